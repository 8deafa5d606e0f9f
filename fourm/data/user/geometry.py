"""Resize (shorter side -> size) and centre-crop every modality of a sample the same way: the one
home of image geometry, used by import (training data) and by generation's condition loading, so the
model sees a condition exactly as it saw its training data.

The crop is the centred square of side min(W, H), resized to size x size in one step (PIL ``box``),
so modalities stored at different resolutions but the same aspect ratio stay pixel-aligned. Each kind
has its filter, from the one table of image kinds (:mod:`fourm.core.image_kinds`): bicubic rgb,
bilinear depth/normals, nearest class ids, and edges by coverage (a pixel is an edge when >= 25% of
its area was, so thin lines survive downscaling).
Boxes are mapped through the same crop and clipped; boxes left empty by the crop are dropped.
"""

from __future__ import annotations

import numpy as np

from fourm.core.image_kinds import EDGE_COVERAGE, IMAGE_KINDS, center_square, resize_crop
from fourm.data.user.report import SIZE_MISMATCH, SkipSample

__all__ = [
    "EDGE_COVERAGE", "center_square", "check_aligned", "fit_image", "fit_images", "resize_crop",
    "transform_boxes",
]

ASPECT_TOLERANCE = 0.02  # relative aspect-ratio difference tolerated between modalities of a sample


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
    """Centre-crop + resize one image of ``kind`` to (size, size) with its filter
    (:meth:`fourm.core.image_kinds.ImageKind.fit`, the resize generation's conditions get too).
    rgb / normals uint8 (H, W, 3); depth float32 (H, W), clipped to [0, 1]; semseg uint8 ids; edges
    uint8 {0, 1}. An unknown kind: FourmError naming the known ones."""
    return IMAGE_KINDS[kind].fit(array, size)


def fit_images(images: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Resize + centre-crop every image modality of a sample to (size, size) with its own filter."""
    return {key: fit_image(arr, key, size) for key, arr in images.items()}
