"""Resize (shorter side -> size) and centre-crop every modality of a sample the same way: the one
home of image geometry, used by import (training data) and by generation's condition loading, so the
model sees a condition exactly as it saw its training data.

The crop is the centred square of side min(W, H), resized to size x size in one step (PIL ``box``),
so modalities stored at different resolutions but the same aspect ratio stay pixel-aligned. Each kind
has its filter: bicubic rgb, bilinear depth/normals, nearest class ids, and edges by coverage (a pixel
is an edge when >= 25% of its area was, so thin lines survive downscaling).
Boxes are mapped through the same crop and clipped; boxes left empty by the crop are dropped.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from fourm.data.user.report import SIZE_MISMATCH, SkipSample

# Resampling filter per image modality: smooth for continuous values, nearest for labels.
RESAMPLE = {
    "rgb": Image.Resampling.BICUBIC,
    "depth": Image.Resampling.BILINEAR,
    "normals": Image.Resampling.BILINEAR,
    "semseg": Image.Resampling.NEAREST,
    "edges": Image.Resampling.BOX,  # then thresholded at EDGE_COVERAGE
}
EDGE_COVERAGE = 0.25  # an output pixel is an edge when at least this share of its area was
ASPECT_TOLERANCE = 0.02  # relative aspect-ratio difference tolerated between modalities of a sample


def center_square(width: int, height: int) -> tuple[float, float, float, float]:
    """The centred square crop (left, top, right, bottom) of a width x height image, in pixels."""
    side = min(width, height)
    left, top = (width - side) / 2.0, (height - side) / 2.0
    return left, top, left + side, top + side


def resize_crop(array: np.ndarray, size: int, resample: Image.Resampling) -> np.ndarray:
    """Centre-crop to a square and resize to (size, size); keeps dtype (uint8 (H,W[,3]) or float32 (H,W))."""
    h, w = array.shape[:2]
    if (h, w) == (size, size):
        return array.copy()
    float_ok = array.dtype == np.float32 and array.ndim == 2
    if float_ok or (array.dtype == np.uint8 and array.ndim in (2, 3)):
        img = Image.fromarray(np.ascontiguousarray(array))  # mode F, L or RGB
    else:
        raise TypeError(f"resize_crop: unsupported array {array.dtype} {array.shape}")
    out = img.resize((size, size), resample, box=center_square(w, h))
    return np.asarray(out, dtype=array.dtype).copy()


def transform_boxes(bboxes: list[dict], width: int, height: int) -> tuple[list[dict], int]:
    """Map normalised boxes of a width x height image through :func:`center_square`, clip to [0, 1].

    Returns (boxes, number dropped because the crop left them empty).
    """
    left, top, right, _ = center_square(width, height)
    side = right - left
    out, dropped = [], 0
    for b in bboxes:
        x0, y0, x1, y1 = b["box"]
        nx0, nx1 = ((np.array([x0, x1]) * width - left) / side).clip(0.0, 1.0)
        ny0, ny1 = ((np.array([y0, y1]) * height - top) / side).clip(0.0, 1.0)
        if nx1 <= nx0 or ny1 <= ny0:
            dropped += 1
            continue
        out.append({"label": b["label"], "box": [float(nx0), float(ny0), float(nx1), float(ny1)]})
    return out, dropped


def check_aligned(images: dict[str, np.ndarray], where: str) -> None:
    """Raise SkipSample if the image modalities of one sample disagree in aspect ratio."""
    shapes = {k: v.shape[:2] for k, v in images.items()}
    if len(shapes) < 2:
        return
    ratios = {k: w / h for k, (h, w) in shapes.items()}
    ref = next(iter(ratios.values()))
    if any(abs(r - ref) > ASPECT_TOLERANCE * ref for r in ratios.values()):
        detail = ", ".join(f"{k} {w}x{h}" for k, (h, w) in shapes.items())
        raise SkipSample(SIZE_MISMATCH, where, detail)


def fit_image(array: np.ndarray, kind: str, size: int) -> np.ndarray:
    """Centre-crop + resize one image of ``kind`` to (size, size) with its filter (module docstring).
    rgb / normals uint8 (H, W, 3); depth float32 (H, W), clipped to [0, 1]; semseg uint8 ids; edges
    uint8 {0, 1}."""
    if kind == "edges":
        if array.shape[:2] == (size, size):
            return array.copy()
        coverage = resize_crop((array > 0).astype(np.float32), size, Image.Resampling.BOX)
        return (coverage >= EDGE_COVERAGE).astype(np.uint8)
    out = resize_crop(array, size, RESAMPLE.get(kind, Image.Resampling.BILINEAR))
    return np.clip(out, 0.0, 1.0) if kind == "depth" else out


def fit_images(images: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Resize + centre-crop every image modality of a sample to (size, size) with its own filter."""
    return {key: fit_image(arr, key, size) for key, arr in images.items()}
