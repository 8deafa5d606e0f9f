"""Training configuration: data sources and mixing, model, masking, optimizer, loop settings.

Loaded from ``configs/train/<name>.yaml`` (plus ``key=value`` overrides) with :func:`load_train_config`;
every field is type-checked and unknown fields fail with a one-line FourmError naming them. The
resolved config is saved as ``config.json`` in the run directory.

Batch sizes: ``batch_size`` is the micro-batch of one process; one optimizer step sees
``batch_size * grad_accum * num_processes`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fourm.data.masking.config import check_budgets
from fourm.errors import FourmError
from fourm.resources import resolve_path
from fourm.utils.config import Config, apply_overrides, read_mapping


@dataclass
class DataSource(Config):
    """One token dataset of the training mixture (a ``fourm-data tokenize`` output directory)."""

    path: str = ""
    weight: float = 1.0  # sampling probability ~ weight
    synthetic: bool = False  # write a tiny structured synthetic token dataset at ``path`` first (debug runs)


@dataclass
class DataConfig(Config):
    """Token datasets, their mixing weights, and the splits/modalities to use."""

    datasets: list[DataSource] = field(default_factory=list)
    modalities: list[str] | None = None  # None = every modality of the datasets (or of model.init_from)
    train_split: str = "train"
    val_split: str = "val"
    epoch_length: int | None = None  # samples per epoch of the mixture; None = sum of the train splits
    val_samples: int | None = None  # validate on the first N val samples; None = all

    def validate(self) -> None:
        if not self.datasets:
            raise FourmError("data.datasets is empty (expected at least one {path: ..., weight: ...})")
        for i, source in enumerate(self.datasets):
            if not source.path:
                raise FourmError(f"data.datasets[{i}].path is empty (expected a token dataset directory)")
            if not source.weight > 0:
                raise FourmError(f"data.datasets[{i}].weight must be > 0, got {source.weight}")
        if self.modalities is not None and not self.modalities:
            raise FourmError("data.modalities is empty (use null for all modalities)")
        for name in ("epoch_length", "val_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FourmError(f"data.{name} must be >= 1 or null, got {value}")


@dataclass
class ModelSection(Config):
    """The model: a preset name (tiny, small, base, large) or architecture YAML, with field
    overrides; or ``init_from`` a saved FourM (model, checkpoint or run directory: architecture and
    weights), optionally with ``add_modalities`` (modality YAMLs) appended for fine-tuning."""

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)  # FourMConfig fields, e.g. {dim: 64}
    init_from: str | None = None
    add_modalities: list[str] = field(default_factory=list)  # e.g. [configs/modalities/extra/caption_embedding.yaml]
    # modalities of init_from whose vocabulary rows are drawn afresh (a new tokenizer): a name (same
    # vocab_size) or a registry YAML of one (its vocab_size); see fourm.training.finetune.reinit_modalities
    reinit_modalities: list[str] = field(default_factory=list)
    # {modality of reinit_modalities: code map JSON (fourm-tokenizer code-map)}: its new rows start as
    # copies of the old codes' rows that cover the same patches (fourm.training.finetune.load_row_maps)
    row_maps: dict[str, str] = field(default_factory=dict)
    # heads of continuous modalities (fourm.model.continuous) of a new model, e.g.
    # {caption_vector: {value_head: diffusion, value_scale: 19.6}}; default: linear, cosine loss
    value_heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    # N-D sin-cos positions of vector modalities of a new model, e.g. {video: [5, 8, 8]}
    # (fourm.model.config.ModalityConfig.position_grid); default: 1D positions
    position_grids: dict[str, list[int]] = field(default_factory=dict)
    # with init_from: the pixel-patch modalities get a fresh patch stem of this kind (linear, conv,
    # conv_image; fourm.model.patch_stem), every other weight carried over (finetune.replace_patch_stem)
    patch_stem: str | None = None
    # with init_from: decoder blocks to follow with a zero-output copy of themselves, e.g. [1, 3]
    # (4 -> 6 blocks; the grown model computes what the old one did; fourm.training.grow)
    grow_decoder: list[int] = field(default_factory=list)
    freeze_trunk_steps: int = 0  # first N steps: only the added / re-initialised rows (or new stem) train
    old_params_lr_scale: float = 1.0  # afterwards: the old weights' updates scaled by this

    def validate(self) -> None:
        if self.freeze_trunk_steps < 0:
            raise FourmError(f"model.freeze_trunk_steps must be >= 0, got {self.freeze_trunk_steps}")
        if not 0 < self.old_params_lr_scale <= 1:
            raise FourmError(f"model.old_params_lr_scale must be in (0, 1], got {self.old_params_lr_scale}")
        if self.init_from is None and self.add_modalities:
            raise FourmError("model.add_modalities needs model.init_from (a trained model to add them to)")
        if self.init_from is not None and self.value_heads:
            raise FourmError("model.value_heads applies to a new model (init_from loads its heads with its weights)")
        if self.init_from is not None and self.position_grids:
            raise FourmError("model.position_grids applies to a new model (init_from keeps its positions)")
        if self.init_from is None and self.reinit_modalities:
            raise FourmError("model.reinit_modalities needs model.init_from (a trained model whose rows to re-initialise)")
        if self.row_maps and not self.reinit_modalities:
            raise FourmError("model.row_maps needs model.reinit_modalities (the modalities whose rows they map)")
        if self.init_from is None and self.patch_stem is not None:
            raise FourmError(
                "model.patch_stem replaces the stem of a trained model (model.init_from); "
                "for a new model use model.overrides.patch_stem"
            )
        if self.init_from is None and self.grow_decoder:
            raise FourmError("model.grow_decoder deepens a trained model (model.init_from); "
                             "for a new model use model.overrides.dec_depth")  # fmt: skip
        tuned = self.freeze_trunk_steps > 0 or self.old_params_lr_scale != 1
        if tuned and not (self.add_modalities or self.reinit_modalities or self.patch_stem or self.grow_decoder):
            raise FourmError(
                "model.freeze_trunk_steps / old_params_lr_scale need model.add_modalities, "
                "model.reinit_modalities, model.patch_stem or model.grow_decoder (new weights to train)"
            )


@dataclass
class MaskingSection(Config):
    """Masking configs for training and for validation, with optional budget overrides."""

    train: str = "configs/masking/mixture.yaml"
    eval: str = "configs/masking/eval_fixed.yaml"  # deterministic, fixed budgets
    # named validation tasks {name: deterministic masking config}, each scored on the val split and
    # logged as val/<name>/loss and val/<name>/loss_<modality>; e.g.
    # {caption_to_bboxes: configs/masking/eval/caption_to_bboxes.yaml}. A task whose modalities the
    # run lacks is skipped with a note.
    eval_tasks: dict[str, str] = field(default_factory=dict)
    input_budget: int | None = None  # overrides both configs' input_budget
    target_budget: int | None = None

    def validate(self) -> None:
        check_budgets(self.input_budget, self.target_budget, prefix="masking.")
        for name, path in self.eval_tasks.items():
            if not name or not all(c.isalnum() or c in "_-." for c in name):
                raise FourmError(f"masking.eval_tasks: bad task name '{name}' (expected letters, digits, _ - .)")
            if not path:
                raise FourmError(f"masking.eval_tasks.{name} is empty (expected a masking config path)")


@dataclass
class OptimConfig(Config):
    """AdamW with linear warm-up to ``lr`` and cosine decay to ``min_lr`` at the last step."""

    lr: float = 1e-3
    min_lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.05  # not applied to norms, biases and embeddings
    warmup_steps: int = 100

    def validate(self) -> None:
        if not self.lr > 0:
            raise FourmError(f"optim.lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise FourmError(f"optim.min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if not all(0 <= b < 1 for b in self.betas):
            raise FourmError(f"optim.betas must be in [0, 1), got {list(self.betas)}")
        if not self.eps > 0:
            raise FourmError(f"optim.eps must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise FourmError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise FourmError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")


@dataclass
class TrainConfig(Config):
    """Everything a training run needs (see the module docstring)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    masking: MaskingSection = field(default_factory=MaskingSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 32  # per process and micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    grad_clip: float | None = 1.0  # max global gradient norm; null = no clipping
    steps: int = 1000  # optimizer steps
    # wall-time cap in minutes (None: none): training stops (checkpoint + final model) once this much
    # training time has passed, counted over resumes; the cosine schedule follows
    # max(step / steps, elapsed / max_minutes)
    max_minutes: float | None = None
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # bf16 = autocast (weights, optimizer, loss fp32);
    # auto = bf16 where the device runs it natively (fourm.utils.precision), else fp32
    log_every: int = 10
    eval_every: int = 200  # 0 = no periodic validation (still at the end if a val split exists)
    eval_batches: int | None = None  # cap on validation batches per process; None = whole val set
    checkpoint_every: int = 200  # 0 = only the final checkpoint
    keep_checkpoints: int = 3  # keep the newest K checkpoints
    seed: int = 0
    output_dir: str = "runs/default"
    num_workers: int = 0  # DataLoader worker processes (masking runs in them)
    tensorboard: bool = True
    deepspeed_config: str | None = None  # DeepSpeed JSON, used when not launched with a DeepSpeed accelerate config
    # torch.compile the model's training forward + loss (inductor; on CPU it needs a C++ compiler, g++ or $CXX).
    # Its first steps compile; on the world model on CPU it buys little (docs/training.md)
    compile: bool = False

    def validate(self) -> None:
        for section in (self.data, self.model, self.masking, self.optim):  # nested sections are not validated on load
            section.validate()
        positive = ("batch_size", "grad_accum", "steps", "log_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise FourmError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "num_workers", "seed"):
            if getattr(self, name) < 0:
                raise FourmError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.eval_batches is not None and self.eval_batches < 1:
            raise FourmError(f"eval_batches must be >= 1 or null, got {self.eval_batches}")
        if self.max_minutes is not None and not (self.max_minutes > 0 and self.max_minutes < float("inf")):
            raise FourmError(f"max_minutes must be > 0 or null, got {self.max_minutes}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise FourmError(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        if not self.output_dir:
            raise FourmError("output_dir is empty (expected a run directory)")
        if self.optim.warmup_steps > self.steps:
            raise FourmError(f"optim.warmup_steps ({self.optim.warmup_steps}) must be <= steps ({self.steps})")
        if self.model.freeze_trunk_steps >= self.steps:
            raise FourmError(
                f"model.freeze_trunk_steps ({self.model.freeze_trunk_steps}) must be < steps ({self.steps})"
            )

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)


def load_train_config(
    path: str | Path,
    overrides: list[str] | None = None,
    output_dir: str | None = None,
    init_from: str | None = None,
    add_modalities: list[str] | None = None,
    datasets: list[str] | None = None,
    max_minutes: float | None = None,
) -> TrainConfig:
    """Read a train YAML/JSON, apply ``key=value`` overrides (and ``output_dir``, ``model.init_from``,
    ``model.add_modalities``, ``max_minutes`` when given; ``datasets``: token dataset paths that replace
    ``data.datasets``, weight 1 each), validate."""
    data = apply_overrides(read_mapping(resolve_path(path)), list(overrides or []))
    if output_dir is not None:
        data["output_dir"] = str(output_dir)
    if max_minutes is not None:
        data["max_minutes"] = max_minutes
    if datasets is not None:
        if not datasets:
            raise FourmError("--data names no dataset (expected PATH[,PATH...])")
        section = data.setdefault("data", {})
        if not isinstance(section, dict):
            raise FourmError(f"{path}: 'data' is not a section")
        section["datasets"] = [{"path": str(p), "weight": 1.0} for p in datasets]
    if init_from is not None or add_modalities:
        model = data.setdefault("model", {})
        if not isinstance(model, dict):
            raise FourmError(f"{path}: 'model' is not a section")
        if init_from is not None:
            model["init_from"] = str(init_from)
        if add_modalities:
            model["add_modalities"] = [str(p) for p in add_modalities]
    try:
        return TrainConfig.from_dict(data)
    except FourmError as e:
        raise FourmError(f"{path}: {e}") from None
