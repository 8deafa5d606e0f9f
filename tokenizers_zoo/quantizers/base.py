"""The quantiser interface every tokenizer builds on, plus shared helpers.

A quantiser maps continuous channels-first latents ``z: (B, D, *spatial)`` to discrete indices
``(B, *spatial)`` and back. All quantisers compute in fp32 even under autocast and return ``z_q`` in
the input's dtype. :class:`CodebookUsage` accumulates index counts so a training loop can report
codebook usage over an eval set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.utils.config import Config


@dataclass
class QuantizerOutput:
    """What every quantiser's ``forward`` returns."""

    z_q: Tensor  # (B, D, *spatial) quantised latents, straight-through to the input
    indices: Tensor  # (B, *spatial) long
    loss: Tensor  # scalar fp32: the quantiser's own loss term(s) (commitment/codebook or KL)
    metrics: dict[str, Tensor] = field(default_factory=dict)  # perplexity, usage, ... (detached)


class Quantizer(nn.Module):
    """Base class: ``forward(z) -> QuantizerOutput`` and ``indices_to_latents(indices)``."""

    codebook_size: int  # number of distinct indices
    dim: int  # D, the channel size the quantiser consumes and produces

    def forward(self, z: Tensor) -> QuantizerOutput:  # z: (B, D, *spatial)
        raise NotImplementedError

    def indices_to_latents(self, indices: Tensor) -> Tensor:
        """(B, *spatial) long -> (B, D, *spatial) latents, equal to ``forward(z).z_q`` values."""
        raise NotImplementedError

    def check_input(self, z: Tensor) -> None:
        """Raise FourmError unless ``z`` is (B, D, *spatial) with D == self.dim."""
        if z.dim() < 2 or z.shape[1] != self.dim:
            raise FourmError(
                f"{type(self).__name__} expects channels-first latents (B, {self.dim}, ...), "
                f"got shape {tuple(z.shape)}"
            )

    def check_indices(self, indices: Tensor) -> None:
        """Raise FourmError for non-integer or out-of-range indices."""
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise FourmError(f"indices must be an integer tensor, got dtype {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise FourmError(
                f"index out of range [{int(indices.min())}, {int(indices.max())}] "
                f"(expected 0 <= index < {self.codebook_size})"
            )


def channels_last_flat(z: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """(B, D, *spatial) -> ((N, D), (B, *spatial)) with N = B * prod(spatial)."""
    lead = (z.shape[0],) + tuple(z.shape[2:])
    return z.movedim(1, -1).reshape(-1, z.shape[1]), lead


def unflatten_channels_first(flat: Tensor, lead: tuple[int, ...]) -> Tensor:
    """(N, D) -> (B, D, *spatial), inverse of :func:`channels_last_flat`."""
    return flat.reshape(*lead, flat.shape[-1]).movedim(-1, 1)


def no_autocast(t: Tensor) -> torch.autocast:
    """A context that disables autocast on ``t``'s device so quantisation runs in fp32."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def linear_fp32(layer: nn.Module, x: Tensor) -> Tensor:
    """Apply an nn.Linear (or Identity) in fp32 whatever the module's parameter dtype."""
    if isinstance(layer, nn.Identity):
        return x
    bias = layer.bias.float() if layer.bias is not None else None
    return F.linear(x, layer.weight.float(), bias)


def perplexity_from_counts(counts: Tensor) -> Tensor:
    """exp(entropy) of the index histogram ``counts: (K,)``; K for uniform use, 1 for collapse."""
    total = counts.sum()
    if total <= 0:
        return torch.zeros((), device=counts.device)
    p = counts.double() / total
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return torch.exp(entropy).float()


def usage_metrics(indices: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """Batch perplexity and usage (fraction of codes used at least once) of ``indices``."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).float()
    return {
        "perplexity": perplexity_from_counts(counts),
        "usage": (counts > 0).float().mean(),
    }


def dist_ready() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum ``t`` in place across processes (no-op without torch.distributed); returns ``t``."""
    if dist_ready():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_(t: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``t`` with rank ``src``'s copy (no-op without torch.distributed); returns ``t``."""
    if dist_ready():
        dist.broadcast(t, src=src)
    return t


class CodebookUsage(nn.Module):
    """Running index histogram: ``update(indices)``, ``usage()``, ``perplexity()``, ``dead_codes()``.

    Counts live in a non-persistent buffer (moves with ``.to(device)``, not saved in checkpoints).
    Call ``reset()`` before an eval pass, then read the figures after it.
    """

    def __init__(self, codebook_size: int):
        super().__init__()
        self.codebook_size = codebook_size
        self.register_buffer("counts", torch.zeros(codebook_size, dtype=torch.long), persistent=False)

    def reset(self) -> None:
        self.counts.zero_()

    @torch.no_grad()
    def update(self, indices: Tensor) -> None:
        """Add the indices (any shape) to the histogram."""
        flat = indices.reshape(-1).to(self.counts.device, torch.long)
        self.counts += torch.bincount(flat, minlength=self.codebook_size)[: self.codebook_size]

    def total(self) -> int:
        return int(self.counts.sum())

    def usage(self) -> float:
        """Fraction of codes seen at least once since the last reset."""
        return float((self.counts > 0).float().mean())

    def perplexity(self) -> float:
        """exp(entropy) of the accumulated histogram."""
        return float(perplexity_from_counts(self.counts.float()))

    def dead_codes(self) -> int:
        """Number of codes never seen since the last reset."""
        return int((self.counts == 0).sum())

    def synced(self) -> CodebookUsage:
        """Sum the counts over all processes (call once at the end of a distributed eval)."""
        all_reduce_sum(self.counts)
        return self


@dataclass
class QuantizerConfig(Config):
    """Typed config for :func:`tokenizers_zoo.quantizers.build_quantizer`; fields per ``kind``."""

    kind: Literal["vq", "fsq", "gumbel"] = "vq"
    dim: int | None = 256  # channels consumed/produced; None only for fsq (= len(levels))
    # vq + gumbel
    codebook_size: int = 1024
    # vq
    code_dim: int | None = None  # low-dim codes with in/out projections (Yu et al., ViT-VQGAN)
    beta: float = 0.25  # commitment weight (van den Oord et al., VQ-VAE)
    use_ema: bool = False  # EMA codebook updates instead of a codebook loss (VQ-VAE-2, Razavi et al.)
    ema_decay: float = 0.99
    l2_normalize: bool = False  # cosine-similarity codes, better usage (ViT-VQGAN)
    kmeans_init: bool = False  # k-means codebook init from the first batch (against poor init/collapse)
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.0  # restart codes whose EMA count falls below this (codebook collapse)
    dead_code_steps: int = 0  # restart codes unused for this many training steps (codebook collapse)
    disabled_codes: tuple[int, ...] = ()  # ids never chosen by encode (pruned near-duplicates, see pruning.py)
    # fsq
    levels: tuple[int, ...] = (8, 5, 5, 5)  # per-channel levels (Mentzer et al., FSQ)
    # gumbel
    temperature: float = 1.0
    hard: bool = False  # straight-through one-hot samples (DALL-E dVAE uses soft)
    kl_weight: float = 5e-4  # weight of KL(q || uniform) (Ramesh et al., DALL-E)

    def validate(self) -> None:
        if self.dim is None and self.kind != "fsq":
            raise FourmError(f"quantizer 'dim' must be set for kind '{self.kind}'")
        if self.dim is not None and self.dim < 1:
            raise FourmError(f"quantizer 'dim' must be >= 1, got {self.dim}")
        if self.codebook_size < 2:
            raise FourmError(f"quantizer 'codebook_size' must be >= 2, got {self.codebook_size}")
        if self.code_dim is not None and self.code_dim < 1:
            raise FourmError(f"quantizer 'code_dim' must be >= 1, got {self.code_dim}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise FourmError(f"quantizer 'ema_decay' must be in [0, 1), got {self.ema_decay}")
        if not self.levels or any(level < 2 for level in self.levels):
            raise FourmError(f"quantizer 'levels' must be integers >= 2, got {list(self.levels)}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise FourmError(f"quantizer 'temperature' must be > 0, got {self.temperature}")
        for name in ("beta", "kl_weight", "dead_code_threshold"):
            if getattr(self, name) < 0:
                raise FourmError(f"quantizer '{name}' must be >= 0, got {getattr(self, name)}")
        bad = [c for c in self.disabled_codes if not 0 <= int(c) < self.codebook_size]
        if bad:
            raise FourmError(f"quantizer 'disabled_codes' must be ids in [0, {self.codebook_size}), got {bad[0]}")
        if len(set(self.disabled_codes)) >= self.codebook_size:
            raise FourmError("quantizer 'disabled_codes' disables every code")
        if self.dead_code_steps < 0 or self.kmeans_iters < 0:
            raise FourmError("quantizer 'dead_code_steps' and 'kmeans_iters' must be >= 0")
