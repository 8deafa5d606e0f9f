"""FourM training: typed config, AdamW + warm-up/cosine, atomic checkpoints with exact resume,
and the accelerate loop (single process, DDP, DeepSpeed ZeRO).

Typical use::

    cfg = load_train_config("configs/train/debug.yaml", ["optim.lr=3e-4"], output_dir="runs/dbg")
    result = train(cfg, resume="auto")          # result.final_model: FourM.save_pretrained dir
"""

from fourm.training.checkpoint import TrainerState, latest_checkpoint, load_checkpoint, save_checkpoint
from fourm.training.config import (
    DataConfig,
    DataSource,
    MaskingSection,
    ModelSection,
    OptimConfig,
    TrainConfig,
    load_train_config,
)
from fourm.training.data import EpochBatchSampler, build_training_data
from fourm.training.loop import TrainingDiverged, TrainResult, build_model, evaluate, train
from fourm.training.optim import WarmupCosine, build_optimizer, lr_at, param_groups, split_decay

__all__ = [
    "DataConfig",
    "DataSource",
    "EpochBatchSampler",
    "MaskingSection",
    "ModelSection",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "TrainerState",
    "TrainingDiverged",
    "WarmupCosine",
    "build_model",
    "build_optimizer",
    "build_training_data",
    "evaluate",
    "latest_checkpoint",
    "load_checkpoint",
    "load_train_config",
    "lr_at",
    "param_groups",
    "save_checkpoint",
    "split_decay",
    "train",
]
