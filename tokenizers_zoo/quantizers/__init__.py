"""Quantisers: continuous latents (B, D, *spatial) <-> discrete indices (B, *spatial).

``build_quantizer(QuantizerConfig(kind="vq" | "fsq" | "gumbel", ...))`` builds one from a config.
"""

from __future__ import annotations

from fourm.errors import FourmError
from tokenizers_zoo.quantizers.base import CodebookUsage, Quantizer, QuantizerConfig, QuantizerOutput
from tokenizers_zoo.quantizers.fsq import FSQ
from tokenizers_zoo.quantizers.gumbel import GumbelQuantizer, exponential_temperature
from tokenizers_zoo.quantizers.vq import VectorQuantizer

__all__ = [
    "FSQ",
    "CodebookUsage",
    "GumbelQuantizer",
    "Quantizer",
    "QuantizerConfig",
    "QuantizerOutput",
    "VectorQuantizer",
    "build_quantizer",
    "exponential_temperature",
]


def build_quantizer(cfg: QuantizerConfig | dict) -> Quantizer:
    """Build the quantiser named by ``cfg.kind`` from a QuantizerConfig (or a plain dict of its fields)."""
    if isinstance(cfg, dict):
        cfg = QuantizerConfig.from_dict(cfg)
    elif not isinstance(cfg, QuantizerConfig):
        raise FourmError(f"build_quantizer expects a QuantizerConfig or dict, got {type(cfg).__name__}")
    else:
        cfg.validate()
    if cfg.disabled_codes and cfg.kind != "vq":
        raise FourmError(f"quantizer 'disabled_codes' is a vq option, not for kind '{cfg.kind}'")
    if cfg.kind == "fsq":
        return FSQ(levels=cfg.levels, dim=cfg.dim)
    if cfg.kind == "gumbel":
        return GumbelQuantizer(
            cfg.dim, cfg.codebook_size, temperature=cfg.temperature, hard=cfg.hard, kl_weight=cfg.kl_weight
        )
    if cfg.kind == "vq":
        return VectorQuantizer(
            cfg.dim,
            cfg.codebook_size,
            code_dim=cfg.code_dim,
            beta=cfg.beta,
            use_ema=cfg.use_ema,
            ema_decay=cfg.ema_decay,
            l2_normalize=cfg.l2_normalize,
            kmeans_init=cfg.kmeans_init,
            kmeans_iters=cfg.kmeans_iters,
            dead_code_threshold=cfg.dead_code_threshold,
            dead_code_steps=cfg.dead_code_steps,
            disabled_codes=cfg.disabled_codes,
        )
    raise FourmError(f"unknown quantizer kind '{cfg.kind}' (known: vq, fsq, gumbel)")
