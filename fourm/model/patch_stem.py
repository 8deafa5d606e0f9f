"""Embedding of one pixel patch: 4M's linear projection, or a small convolutional stem.

A patch modality's encoder token is its ``p x p x c`` patch (values in [-1, 1], flattened row-major
as (p, p, c), :func:`fourm.core.patches.patchify`). ``linear`` projects the flat values to the model
width (4M); ``conv`` first runs two 3 x 3 convolutions inside the patch (the second with stride 2),
so the token starts from local edge and corner detectors rather than raw pixels. Both see only their
own patch: no pixel of a masked neighbour leaks in.

    stem = build_patch_stem("conv", patch_dim=192, dim=256, channels=3, width=32)
    reset_patch_stem(stem, position_scale=0.25)
    tokens = stem(levels)        # (n, 192) -> (n, 256)
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.model.config import PatchStemKind, patch_side

POSITION_MEAN_SQUARE = 0.5  # of a sin-cos feature (sin^2 + cos^2 = 1 per pair of dims)
PATCH_VALUE_MEAN_SQUARE = 1.0 / 3.0  # of a pixel value uniform in [-1, 1]


def patch_init_std(patch_dim: int, position_scale: float = 1.0) -> float:
    """Init std of a linear patch projection's weight (D, patch_dim): pixel patches enter the residual
    stream at the scale of the position embedding (per-feature mean square ``position_scale**2 / 2``),
    not at the 0.02 of the token rows, under which the position table (norm sqrt(D/2)) drowned them."""
    return position_scale * math.sqrt(POSITION_MEAN_SQUARE / (patch_dim * PATCH_VALUE_MEAN_SQUARE))

class ConvPatchStem(nn.Module):
    """(n, p*p*c) -> (n, D): conv 3x3 (c -> w), GELU, conv 3x3 stride 2 (w -> w), GELU, LayerNorm over
    the flattened (w, ceil(p/2), ceil(p/2)) features, linear to D."""

    def __init__(self, patch_dim: int, dim: int, channels: int, width: int) -> None:
        super().__init__()
        if width < 1:
            raise FourmError(f"patch_stem_width must be >= 1, got {width}")
        self.side, self.channels, self.in_features = patch_side(patch_dim, channels), channels, patch_dim
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        half = (self.side + 1) // 2
        self.norm = nn.LayerNorm(width * half * half)
        self.proj = nn.Linear(width * half * half, dim)

    def reset_output(self, std: float) -> None:
        """Output projection at ``std`` (its input is layer-normalised: unit mean square per feature)."""
        nn.init.normal_(self.proj.weight, std=std / math.sqrt(self.proj.in_features))
        nn.init.zeros_(self.proj.bias)

    def forward(self, levels: Tensor) -> Tensor:  # (n, p*p*c) -> (n, D)
        x = levels.reshape(-1, self.side, self.side, self.channels).permute(0, 3, 1, 2)  # (n, c, p, p)
        x = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return self.proj(self.norm(x.flatten(1)))


def build_patch_stem(kind: PatchStemKind, patch_dim: int, dim: int, channels: int, width: int) -> nn.Module:
    """The embedding of one patch modality (initialise it with :func:`reset_patch_stem`)."""
    if kind == "linear":
        return nn.Linear(patch_dim, dim)
    if kind == "conv":
        return ConvPatchStem(patch_dim, dim, channels, width)
    raise FourmError(f"unknown patch_stem '{kind}' (expected linear or conv)")


def reset_patch_stem(stem: nn.Module, position_scale: float = 1.0) -> None:
    """Initialise a stem so that its output features start at the position embedding's scale (std
    ``position_scale * sqrt(1/2)``); the convolutions keep PyTorch's default init."""
    if isinstance(stem, ConvPatchStem):
        stem.reset_output(position_scale * math.sqrt(POSITION_MEAN_SQUARE))
        return
    nn.init.normal_(stem.weight, std=patch_init_std(stem.in_features, position_scale))
    nn.init.zeros_(stem.bias)
