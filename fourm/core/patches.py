"""Pixel patches: an image as a grid of flattened patches of 8-bit levels, the encoder input of a
patch modality (4M feeds RGB to the encoder this way; its tokens stay the decoder's targets).

A patch modality (``patch_size`` set in its YAML) has no tokenizer: each sample is the image cut
into ``(S / p) ** 2`` patches of ``p * p * C`` values, row-major over the grid, each patch
row-major over (y, x, channel). Values are 8-bit levels 0..255 of the modality's ``value_range``
(rgb: the pixels themselves); the model maps them to [-1, 1] and projects each patch linearly::

    levels = to_levels(depth, (0.0, 1.0))       # (H, W) float -> (H, W) uint8; from_levels inverts it
    patches = patchify(rgb, 8)                  # (64, 64, 3) -> (64, 192) uint8
    image = unpatchify(patches, 8, 3)           # and back
"""

from __future__ import annotations

import math

import numpy as np

from fourm.errors import FourmError

LEVELS = 256  # values of a patch entry (8 bits)


def to_levels(image: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """An image (H, W) or (H, W, C) -> uint8 levels of ``value_range`` (default [0, 255]), clipped."""
    arr = np.asarray(image)
    lo, hi = value_range if value_range is not None else (0.0, 255.0)
    if arr.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
        return arr
    scaled = (arr.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def from_levels(levels: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Inverse of :func:`to_levels`: uint8 levels -> uint8 for [0, 255] (the default), else float32
    values of ``value_range``."""
    lo, hi = value_range if value_range is not None else (0.0, 255.0)
    arr = np.asarray(levels)
    if (lo, hi) == (0.0, 255.0):
        return arr.astype(np.uint8)
    return (lo + arr.astype(np.float32) * ((hi - lo) / 255.0)).astype(np.float32)


def patchify(image: np.ndarray, patch_size: int) -> np.ndarray:
    """(H, W) or (H, W, C) with H = W divisible by ``patch_size`` -> (N, p * p * C), N = (H / p) ** 2."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise FourmError(f"patchify expects an image (H, W) or (H, W, C), got shape {tuple(np.shape(image))}")
    h, w, c = arr.shape
    if h != w or h % patch_size:
        raise FourmError(f"patchify needs a square image whose side divides by {patch_size}, got {h}x{w}")
    g = h // patch_size
    grid = arr.reshape(g, patch_size, g, patch_size, c).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(grid.reshape(g * g, patch_size * patch_size * c))


def unpatchify(patches: np.ndarray, patch_size: int, channels: int) -> np.ndarray:
    """Inverse of :func:`patchify`: (N, p * p * C) -> (H, W, C)."""
    arr = np.asarray(patches)
    n = arr.shape[0]
    g = math.isqrt(n)
    if arr.ndim != 2 or g * g != n or arr.shape[1] != patch_size * patch_size * channels:
        raise FourmError(
            f"unpatchify expects (N, {patch_size * patch_size * channels}) with N square, got {tuple(arr.shape)}"
        )
    grid = arr.reshape(g, g, patch_size, patch_size, channels).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(grid.reshape(g * patch_size, g * patch_size, channels))
