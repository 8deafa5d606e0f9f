"""Helpers of the training tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from fourm.training.config import TrainConfig


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
