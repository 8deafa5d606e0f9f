"""The codec of a continuous modality (``value_dim`` > 0, :mod:`fourm.model.continuous`): no tokenizer,
its raw value is the float vector itself (``length`` * ``value_dim`` values, e.g. a 384-d MiniLM
caption embedding), which the model reads through a linear projection and predicts with a value head::

    codec = ValueCodec("caption_vector", length=1, value_dim=384)
    values = codec.encode([vec_a, vec_b])        # (2, 384) float32
    codec.decode(values)                         # [array (384,), array (384,)]
    codec.token_values(values)                   # (2, 1, 384): one row per token, the model's condition

A raw value is a sequence of floats, a numpy array or a tensor of ``length * value_dim`` values (or
``(length, value_dim)``), or a string: a path to a ``.npy`` / ``.json`` file or a JSON list (``--cond``).

An image of pixel patches (MAR / Transfusion style, e.g. ``configs/modalities/extra/rgb_patches_dh.yaml``):
a square number (>= 4) of tokens of ``3 p^2`` values (p >= 2) is read as the RGB image cut into p x p
patches (:func:`fourm.core.patches.patchify` order), each value a pixel level mapped to [-1, 1]
(``level / 127.5 - 1``). Its codec decodes to (S, S, 3) uint8 images and also takes one as a raw value::

    codec = ValueCodec("rgb_patches_dh", length=64, value_dim=192)   # codec.patch_size == 8
    values = codec.encode([image])               # (1, 12288) in [-1, 1] from a (64, 64, 3) uint8 image
    codec.decode(values)                         # [array (64, 64, 3) uint8]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fourm.core.patches import patchify, unpatchify
from fourm.errors import FourmError

IMAGE_CHANNELS = 3  # an image of pixel patches is RGB


def pixel_patch_side(length: int, value_dim: int) -> int:
    """Side p of the RGB pixel patches a continuous modality of ``length`` tokens of ``value_dim`` values
    holds (a square number >= 4 of tokens of 3 p^2 values, p >= 2), 0 for a plain vector."""
    side = math.isqrt(value_dim // IMAGE_CHANNELS)
    grid = math.isqrt(length)
    if length >= 4 and grid * grid == length and side >= 2 and IMAGE_CHANNELS * side * side == value_dim:
        return side
    return 0


def levels_to_values(levels: np.ndarray) -> np.ndarray:
    """Pixel levels 0..255 -> float32 values in [-1, 1]."""
    return np.asarray(levels, dtype=np.float32) / 127.5 - 1.0


def values_to_levels(values: np.ndarray) -> np.ndarray:
    """Float values in [-1, 1] -> uint8 pixel levels (rounded, clipped)."""
    return np.clip(np.rint((np.asarray(values, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


class ValueCodec:
    """One continuous modality: raw float vectors <-> values (B, L * C) (no tokenizer); an image of
    pixel patches (``patch_size`` > 0): raw (S, S, 3) uint8 images <-> values (B, L * C) in [-1, 1]."""

    kind = "vector"
    tokenizer = None  # nothing to save in a bundle

    def __init__(self, name: str, length: int, value_dim: int, patch_size: int | None = None) -> None:
        """``patch_size``: None reads the layout off the shape (:func:`pixel_patch_side`), 0 = a plain vector."""
        self.name, self.length, self.value_dim = name, int(length), int(value_dim)
        self.vocab_size = 1  # its token ids are 0
        self.patch_size = (
            pixel_patch_side(self.length, self.value_dim) if patch_size is None else int(patch_size)
        )
        if self.patch_size and self.patch_size != pixel_patch_side(self.length, self.value_dim):
            raise FourmError(
                f"{name}: patch_size {self.patch_size} does not fit {self.length} tokens of {self.value_dim} values "
                f"(expected a square number of tokens of 3 p^2 values)"
            )

    @property
    def image_size(self) -> int:
        """Side S of the image (0 for a plain vector)."""
        return math.isqrt(self.length) * self.patch_size

    def from_image(self, image: Any) -> np.ndarray:
        """An (S, S, 3) image of uint8 levels -> its values (L * C,) float32 in [-1, 1]."""
        arr = np.asarray(image)
        shape = (self.image_size, self.image_size, IMAGE_CHANNELS)
        if arr.shape != shape:
            raise FourmError(f"{self.name}: expected an image of shape {shape}, got {arr.shape}")
        if arr.dtype != np.uint8:
            raise FourmError(f"{self.name}: expected an image of uint8 levels, got dtype {arr.dtype}")
        return levels_to_values(patchify(arr, self.patch_size)).reshape(-1)

    def to_image(self, values: Any) -> np.ndarray:
        """Values (L * C,) in [-1, 1] -> the (S, S, 3) uint8 image."""
        patches = values_to_levels(np.asarray(values).reshape(self.length, self.value_dim))
        return unpatchify(patches, self.patch_size, IMAGE_CHANNELS)

    @property
    def dim(self) -> int:
        """Values per sample (L * C)."""
        return self.length * self.value_dim

    def _read(self, value: str) -> Any:
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        path = Path(text)
        if not path.is_file():
            raise FourmError(
                f"{self.name}: expected {self.dim} floats (a JSON list, or a .npy / .json file), got {value[:60]!r}"
            )
        return np.load(path) if path.suffix == ".npy" else json.loads(path.read_text())

    def normalize(self, value: Any) -> np.ndarray:
        """One raw value -> (L * C,) float32, checked (an image of pixel patches: also an (S, S, 3) uint8 image)."""
        if isinstance(value, str):
            try:
                value = self._read(value)
            except (OSError, ValueError) as e:
                raise FourmError(f"{self.name}: cannot read {value[:60]!r} ({e})") from None
        if isinstance(value, Tensor):
            value = value.detach().cpu().numpy()
        if self.patch_size and np.ndim(value) == 3:
            return self.from_image(value)
        try:
            arr = np.asarray(value, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise FourmError(f"{self.name}: expected {self.dim} floats, got {type(value).__name__}") from None
        if arr.shape != (self.dim,) or not np.isfinite(arr).all():
            raise FourmError(
                f"{self.name}: expected {self.dim} finite floats ({self.length} x {self.value_dim}), got shape {np.shape(value)}"
            )
        return arr

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Raw values (one per sample) -> (B, L * C) float32 on the CPU."""
        if prefix:
            raise FourmError(
                f"'{self.name}' is a continuous modality: it has no prefix (give the whole vector)"
            )
        if isinstance(values, (str, dict)) or not hasattr(values, "__len__") or len(values) == 0:
            raise FourmError(f"{self.name}: expected a non-empty list of vectors (one per sample)")
        return torch.as_tensor(np.stack([self.normalize(v) for v in values]))

    def decode(self, values: Any, seed: int = 0) -> list[np.ndarray]:
        """Values (B, L * C) (or given continuous tokens, with ``.values`` (B, L, C)) -> B float32 arrays
        (L * C,), or B (S, S, 3) uint8 images for an image of pixel patches."""
        if hasattr(values, "positions"):  # fourm.generation's GivenTokens (as the other codecs read it)
            values = values.values
        t = torch.as_tensor(values).detach().float().cpu()
        if not t.dtype.is_floating_point or t.dim() < 2 or t[0].numel() != self.dim:
            raise FourmError(f"{self.name}: expected values (B, {self.dim}), got shape {tuple(t.shape)}")
        rows = list(t.reshape(t.shape[0], self.dim).numpy())
        return [self.to_image(r) for r in rows] if self.patch_size else rows

    def token_values(self, values: Tensor) -> Tensor:
        """Values (B, L * C) -> (B, L, C) float32, one row per token (what ``GivenTokens.continuous`` takes)."""
        return torch.as_tensor(values).float().reshape(-1, self.length, self.value_dim)
