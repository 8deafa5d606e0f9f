"""Embedding of pixel patches: 4M's linear projection, or a small convolutional stem.

A patch modality's encoder token is its ``p x p x c`` patch (values in [-1, 1], flattened row-major
as (p, p, c), :func:`fourm.core.patches.patchify`). ``linear`` projects the flat values to the model
width (4M); ``conv`` first runs two 3 x 3 convolutions inside the patch (the second with stride 2),
so the token starts from local edge and corner detectors rather than raw pixels. Both see only their
own patch. ``conv_image`` puts the given patches back on their image, runs a small CNN over it down to
the patch grid (stride-2 convolutions) and takes each given patch's cell, so a token also sees the
edges of its neighbours: shapes that span patches. Patches that are not given are zeroed and flagged
in an extra input channel, so no pixel of a masked neighbour leaks in. The patch's own linear
projection (4M's) is added to the CNN's output: trained alone, the CNN path dropped the objects'
colour (a linear probe of colour on its output fell from 0.94 at init to chance), which the linear
path keeps (docs/experiments/default_model.md, round 8).

    stem = build_patch_stem("conv", patch_dim=192, dim=256, channels=3, width=32)
    reset_patch_stem(stem, position_scale=0.25)
    tokens = stem(levels)        # (n, 192) -> (n, 256)
    stem = build_patch_stem("conv_image", patch_dim=192, dim=256, channels=3, width=32, length=64)
    tokens = stem.embed_given(levels, position, here)   # (B, N, 192), (B, N), (B, N) -> (here.sum(), 256)
"""

from __future__ import annotations

import math
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.model.config import PatchStemKind, patch_side

POSITION_MEAN_SQUARE = 0.5  # of a sin-cos feature (sin^2 + cos^2 = 1 per pair of dims)
PATCH_VALUE_MEAN_SQUARE = 1.0 / 3.0  # of a pixel value uniform in [-1, 1]


def patch_values(levels: Tensor) -> Tensor:
    """8-bit patch levels (any shape, 0..255) -> float values in [-1, 1], what every patch stem reads."""
    return levels.float() * (2.0 / 255.0) - 1.0


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


class ImageConvStem(nn.Module):
    """Given patches of one modality (B, N, p*p*c) at grid positions -> (n_given, D): the image of the
    given patches (absent ones zero) plus a "given" channel, conv 3x3 (c + 1 -> w), then log2(p) conv
    3x3 stride 2 layers (w -> 2w -> 2w ...), GELU after each, down to the (g, g) patch grid; each given
    patch's cell is layer-normalised and projected to D (``proj``), plus the patch's own linear
    projection (``linear``, the ``linear`` stem). Receptive field: about 3p pixels."""

    def __init__(self, patch_dim: int, dim: int, channels: int, width: int, length: int) -> None:
        super().__init__()
        if width < 1:
            raise FourmError(f"patch_stem_width must be >= 1, got {width}")
        self.side, self.channels, self.in_features = patch_side(patch_dim, channels), channels, patch_dim
        self.grid = math.isqrt(length)
        if self.side & (self.side - 1) or self.grid * self.grid != length:
            raise FourmError(
                f"a conv_image patch stem needs patches whose side is a power of 2 on a square grid; got side "
                f"{self.side}, {length} patches"
            )
        layers, c_in = [nn.Conv2d(channels + 1, width, 3, padding=1)], width
        for i in range(self.side.bit_length() - 1):  # p -> 1 pixel per patch: log2(p) halvings
            c_out = width * 2 if i else width
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(c_in)
        self.proj = nn.Linear(c_in, dim)
        self.linear = nn.Linear(patch_dim, dim)

    def reset_output(self, std: float) -> None:
        """Output at ``std``: the CNN path and the linear path each at ``std / sqrt(2)`` (the CNN's
        features are layer-normalised: unit mean square; pixel values: mean square 1/3)."""
        half = std / math.sqrt(2.0)
        nn.init.normal_(self.proj.weight, std=half / math.sqrt(self.proj.in_features))
        nn.init.normal_(self.linear.weight, std=half / math.sqrt(self.in_features * PATCH_VALUE_MEAN_SQUARE))
        for bias in (self.proj.bias, self.linear.bias):
            nn.init.zeros_(bias)

    def images(self, levels: Tensor, position: Tensor, here: Tensor) -> Tensor:
        """(B, N, P) patches, (B, N) grid positions, (B, N) which rows are this modality's ->
        (B, c + 1, g*p, g*p): the given patches on their grid, zero elsewhere, and the "given" channel."""
        return self._images(levels, position, *here.nonzero(as_tuple=True))

    def _images(self, levels: Tensor, position: Tensor, b: Tensor, n: Tensor) -> Tensor:
        """:meth:`images` with the given rows as (batch, row) index tensors."""
        pos = position[b, n]
        g, p, c = self.grid, self.side, self.channels
        grid = levels.new_zeros(levels.shape[0], g * g, p * p * c + 1)
        grid[b, pos] = torch.cat([levels[b, n, : self.in_features], levels.new_ones(len(b), 1)], dim=1)
        pixels = grid[..., :-1].reshape(-1, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(-1, c, g * p, g * p)
        given = grid[..., -1].reshape(-1, 1, g, g).repeat_interleave(p, 2).repeat_interleave(p, 3)
        return torch.cat([pixels, given], dim=1)

    def cell_features(self, levels: Tensor, position: Tensor, b: Tensor, n: Tensor) -> Tensor:
        """The CNN path before ``proj``: (B, N, P) patches, (B, N) positions, the given rows as (batch,
        row) index tensors -> (len(b), C) layer-normalised features of their grid cells."""
        x = self._images(levels, position, b, n)
        for conv in self.convs:
            x = F.gelu(conv(x))
        cells = x.flatten(2).transpose(1, 2)  # (B, g*g, C)
        return self.norm(cells[b, position[b, n]])

    def embed_given(self, levels: Tensor, position: Tensor, here: Tensor) -> Tensor:
        """(B, N, P), (B, N), (B, N) -> (here.sum(), D), in the row-major order of ``here``."""
        b, n = here.nonzero(as_tuple=True)
        cnn = self.proj(self.cell_features(levels, position, b, n))
        return cnn + self.linear(levels[b, n, : self.in_features])


def build_patch_stem(
    kind: PatchStemKind, patch_dim: int, dim: int, channels: int, width: int, length: int | None = None
) -> nn.Module:
    """The embedding of one patch modality of ``length`` patches (initialise it with
    :func:`reset_patch_stem`)."""
    if kind == "linear":
        return nn.Linear(patch_dim, dim)
    if kind == "conv":
        return ConvPatchStem(patch_dim, dim, channels, width)
    if kind == "conv_image":
        if length is None:
            raise FourmError("a conv_image patch stem needs the modality's number of patches (length)")
        return ImageConvStem(patch_dim, dim, channels, width, length)
    raise FourmError(f"unknown patch_stem '{kind}' (expected one of {', '.join(get_args(PatchStemKind))})")


def reset_patch_stem(stem: nn.Module, position_scale: float = 1.0) -> None:
    """Initialise a stem so that its output features start at the position embedding's scale (std
    ``position_scale * sqrt(1/2)``); the convolutions keep PyTorch's default init."""
    if isinstance(stem, (ConvPatchStem, ImageConvStem)):
        stem.reset_output(position_scale * math.sqrt(POSITION_MEAN_SQUARE))
        return
    nn.init.normal_(stem.weight, std=patch_init_std(stem.in_features, position_scale))
    nn.init.zeros_(stem.bias)
