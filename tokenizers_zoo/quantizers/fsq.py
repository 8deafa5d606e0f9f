"""Finite scalar quantisation (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Each of ``len(levels)`` channels is bounded with tanh and rounded to one of ``levels[i]`` values;
the index is the mixed-radix number of the per-channel digits. No codebook, no auxiliary loss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fourm.errors import FourmError
from tokenizers_zoo.quantizers.base import (
    CodebookUsage,
    Quantizer,
    QuantizerOutput,
    channels_last_flat,
    linear_fp32,
    no_autocast,
    unflatten_channels_first,
    usage_metrics,
)


def round_ste(x: Tensor) -> Tensor:
    """Round with a straight-through (identity) gradient."""
    return x + (torch.round(x) - x).detach()


class FSQ(Quantizer):
    """FSQ with ``codebook_size = prod(levels)``; optional linear projections ``dim -> len(levels)``.

    ``forward(z: (B, dim, *spatial))``: codes lie on the grid {-1..1} per channel; loss is 0.
    """

    def __init__(
        self,
        levels: tuple[int, ...] | list[int] = (8, 5, 5, 5),  # per-channel level counts (FSQ paper defaults)
        dim: int | None = None,  # channels in/out; projections when != len(levels) (FSQ paper, Sec. 3)
        eps: float = 1e-3,  # widens the tanh bound so the extreme levels are reachable
    ):
        super().__init__()
        levels = tuple(int(v) for v in levels)
        if not levels or any(v < 2 for v in levels):
            raise FourmError(f"FSQ levels must be integers >= 2, got {list(levels)}")
        if dim is not None and dim < 1:
            raise FourmError(f"FSQ dim must be >= 1, got {dim}")
        self.levels = levels
        self.num_channels = len(levels)
        self.dim = dim if dim is not None else self.num_channels
        self.codebook_size = math.prod(levels)
        self.eps = eps
        projected = self.dim != self.num_channels
        self.project_in = nn.Linear(self.dim, self.num_channels) if projected else nn.Identity()
        self.project_out = nn.Linear(self.num_channels, self.dim) if projected else nn.Identity()
        lv = torch.tensor(levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor((1,) + levels[:-1], dtype=torch.long), dim=0)
        self.register_buffer("_levels", lv, persistent=False)  # (L,)
        self.register_buffer("_half_width", torch.floor(lv / 2), persistent=False)  # (L,) digit offset
        self.register_buffer("_basis", basis, persistent=False)  # (L,) mixed-radix place values
        self.usage = CodebookUsage(self.codebook_size)  # running histogram; reset() before an eval pass

    def bound(self, z: Tensor) -> Tensor:
        """Squash z (..., L) so that round() yields exactly ``levels[i]`` distinct integers per channel."""
        half = (self._levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)  # even levels: grid is shifted by 1/2
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Normalised grid codes (..., L) in [-1, 1] -> mixed-radix indices (...)."""
        digits = torch.round(codes * self._half_width + self._half_width).long()  # (..., L) in [0, level)
        return (digits * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Mixed-radix indices (...) -> normalised grid codes (..., L) in [-1, 1]."""
        digits = (indices.long()[..., None] // self._basis) % self._levels.long()  # (..., L)
        return (digits.float() - self._half_width) / self._half_width

    def forward(self, z: Tensor) -> QuantizerOutput:
        """z: (B, dim, *spatial) -> z_q (same shape and dtype), indices (B, *spatial), loss 0."""
        self.check_input(z)
        with no_autocast(z):
            flat, lead = channels_last_flat(z.float())  # (N, dim)
            h = linear_fp32(self.project_in, flat)  # (N, L)
            codes = round_ste(self.bound(h)) / self._half_width  # (N, L) on the grid, straight-through
            indices = self.codes_to_indices(codes.detach())  # (N,)
            z_q = linear_fp32(self.project_out, codes)  # (N, dim)
            self.usage.update(indices)
            metrics = usage_metrics(indices, self.codebook_size)
        z_q = unflatten_channels_first(z_q, lead).to(z.dtype)
        loss = torch.zeros((), device=z.device)
        return QuantizerOutput(z_q=z_q, indices=indices.reshape(lead), loss=loss, metrics=metrics)

    def indices_to_latents(self, indices: Tensor) -> Tensor:
        """(B, *spatial) long -> (B, dim, *spatial) fp32 latents."""
        self.check_indices(indices)
        with no_autocast(indices):
            codes = self.indices_to_codes(indices.reshape(-1))  # (N, L)
            out = linear_fp32(self.project_out, codes)  # (N, dim)
        return unflatten_channels_first(out, tuple(indices.shape))

    def extra_repr(self) -> str:
        return f"levels={self.levels}, dim={self.dim}, codebook_size={self.codebook_size}"
