"""Helpers of the training tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.training.config import TrainConfig


def save_trained_like(modalities: dict[str, ModalityConfig], tied: bool, arch: dict, out: Path) -> Path:
    """Save a 'trained' tiny FourM over ``modalities`` to ``out`` -> ``out``: seeded random weights
    moved off the default init, so a fine-tuning load must copy them, not re-initialise them."""
    torch.manual_seed(0)
    model = FourM(FourMConfig.preset("tiny", modalities, tie_embeddings=tied, **arch))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(out)
    return out


def tiny_config(tokens: Path, out: Path, **changes) -> TrainConfig:
    """A seconds-long fp32 run of a dim-32, 1+1-block model; ``changes`` replace top-level fields
    (nested sections as dicts merged into the defaults)."""
    base = {
        "data": {"datasets": [{"path": str(tokens)}]},
        "model": {"preset": "tiny", "overrides": {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2}},
        "masking": {"input_budget": 16, "target_budget": 16},
        "optim": {"lr": 3e-3, "min_lr": 1e-4, "warmup_steps": 2},
        "batch_size": 4,
        "steps": 6,
        "precision": "fp32",
        "log_every": 1,
        "eval_every": 0,
        "checkpoint_every": 0,
        "tensorboard": False,
        "output_dir": str(out),
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return TrainConfig.from_dict(base)
