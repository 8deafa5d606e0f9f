"""Helpers of the training tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.training.config import TrainConfig
from fourm.training.synthetic import INFO, SPECIALS, synthetic_splits

PIX = "rgb_pixels"  # the pixel-patch modality of write_pixel_tokens: 16 patches of 2 x 2 x 3 values


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


def write_pixel_tokens(out: Path) -> Path:
    """Synthetic rgb/depth/caption samples + pixel patches ``PIX`` that render each rgb token as a
    colour (16 x 12 values), written as a token dataset at ``out``."""
    splits = synthetic_splits(num_train=48, num_val=8, seed=2)
    palette = np.random.default_rng(0).integers(0, 256, (32, 3))
    for samples in splits.values():
        for s in samples:
            s[PIX] = np.repeat(palette[s["rgb"]], 4, axis=0).reshape(-1)  # each patch: its token's colour
    info = TokenDatasetInfo(
        modalities={**INFO.modalities, PIX: ModalityTokens(kind="image", vocab_size=256, length=16, patch_dim=12)},
        specials=SPECIALS,
    )
    return write_token_dataset(out, splits, info)
