"""Pictures of tokenizer reconstructions: raw schema arrays -> RGB tiles -> one PNG grid (plain PIL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fourm.utils.atomic import atomic_path

# Depth colour ramp (near = bright yellow, far = dark purple), interpolated linearly.
_DEPTH_RAMP = np.array(
    [[253, 231, 37], [94, 201, 98], [33, 145, 140], [59, 82, 139], [68, 1, 84]], np.float32
)
# Semseg palette: class 0 (background) black, then distinct saturated colours (cycled).
_CLASS_COLORS = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 190],
        [0, 128, 128],
    ],
    np.uint8,
)


def to_rgb_tile(modality: str, array: np.ndarray) -> np.ndarray:
    """One raw array of ``modality`` (schema layout) -> uint8 (H, W, 3) picture."""
    a = np.asarray(array)
    if modality in ("rgb", "normals"):
        return a.astype(np.uint8)
    if modality == "depth":
        x = np.clip(a.astype(np.float32), 0, 1) * (len(_DEPTH_RAMP) - 1)
        lo = np.floor(x).astype(int).clip(0, len(_DEPTH_RAMP) - 2)
        frac = (x - lo)[..., None]
        return (_DEPTH_RAMP[lo] * (1 - frac) + _DEPTH_RAMP[lo + 1] * frac).round().astype(np.uint8)
    if modality == "semseg":
        return _CLASS_COLORS[a.astype(np.int64) % len(_CLASS_COLORS)]
    return np.repeat((a > 0).astype(np.uint8)[..., None] * 255, 3, axis=-1)  # edges


def save_grid(rows: list[list[np.ndarray]], path: str | Path, pad: int = 2, scale: int = 2) -> None:
    """Save rows of equally sized (H, W, 3) uint8 tiles as one PNG (atomic), upscaled ``scale`` x."""
    h, w = rows[0][0].shape[:2]
    ncols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = tile
    img = Image.fromarray(canvas)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def reconstruction_grid(modality: str, inputs: np.ndarray, recons: np.ndarray, path: str | Path) -> None:
    """Two-row PNG: raw inputs (top) and their reconstructions (bottom)."""
    save_grid([[to_rgb_tile(modality, a) for a in inputs], [to_rgb_tile(modality, a) for a in recons]], path)
