"""Colour segmentation of an rgb image into blobs of the world's named colours (no network).

Objects are Lambertian-shaded versions of a named colour (``palette.COLORS``), so their hue is the
colour's hue wherever they show, while the ground is a muted low-saturation gradient. A pixel gets
the named colour of nearest hue if it is saturated enough and that hue is close; connected
components (4-neighbourhood) of one colour are blobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fourm.data.world.palette import COLORS
from fourm.errors import FourmError

COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
MIN_SATURATION = 0.38  # ground saturation is at most 0.3; the least saturated object colour (pink) 0.5
MAX_HUE_DISTANCE = 0.07  # of the hue circle (25 degrees); named hues are at least 0.08 apart
MIN_VALUE = 0.12  # darker pixels have no reliable hue
MIN_BLOB_FRACTION = 0.003  # of the image area (12 px at 64x64; the smallest visible object has ~40)


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in [0, 1), saturation, value of float rgb in [0, 1].  # 3 x (...)"""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    chroma = mx - mn
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(
        mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    hue = np.where(chroma > 0, hue / 6.0, 0.0)
    sat = np.where(mx > 0, chroma / np.where(mx > 0, mx, 1.0), 0.0)
    return hue, sat, mx


PALETTE_HUES = _hsv(np.array(list(COLORS.values()), dtype=np.float64) / 255.0)[0]  # (K,)


def color_labels(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel colour label: 0 = none (ground, blurred rims), k + 1 = ``COLOR_NAMES[k]``.  # (H, W)"""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise FourmError(f"rgb: expected an array of shape (H, W, 3), got {tuple(rgb.shape)}")
    hue, sat, val = _hsv(rgb.astype(np.float64) / 255.0)
    dist = np.abs(hue[..., None] - PALETTE_HUES)
    dist = np.minimum(dist, 1.0 - dist)  # (H, W, K) circular hue distance
    nearest = dist.argmin(-1)
    ok = (sat >= MIN_SATURATION) & (val >= MIN_VALUE) & (dist.min(-1) <= MAX_HUE_DISTANCE)
    return np.where(ok, nearest + 1, 0).astype(np.int64)


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a bool mask: (labels (H, W), 0 = off, 1..n; n).

    Vectorised min-label propagation with pointer jumping (no scipy needed)."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    big = h * w
    lab = np.where(mask, np.arange(big).reshape(h, w), big)
    while True:
        new = lab.copy()
        np.minimum(new[1:], lab[:-1], out=new[1:])
        np.minimum(new[:-1], lab[1:], out=new[:-1])
        np.minimum(new[:, 1:], lab[:, :-1], out=new[:, 1:])
        np.minimum(new[:, :-1], lab[:, 1:], out=new[:, :-1])
        new = np.where(mask, new, big)
        flat = new.ravel()
        on = flat < big
        flat[on] = flat[flat[on]]  # pointer jumping: adopt the label of one's label
        if np.array_equal(new, lab):
            break
        lab = new
    roots, dense = np.unique(lab[mask], return_inverse=True)
    out = np.zeros((h, w), dtype=np.int64)
    out[mask] = dense + 1
    return out, len(roots)


@dataclass
class Blob:
    """A connected region of one named colour."""

    color: str
    mask: np.ndarray  # (H, W) bool
    area: int  # pixels
    centroid: tuple[float, float]  # (x, y), fractions of the image side
    box: tuple[float, float, float, float]  # [x0, y0, x1, y1] normalised pixel edges, like bboxes


def find_blobs(rgb: np.ndarray, min_fraction: float = MIN_BLOB_FRACTION) -> list[Blob]:
    """Blobs of every named colour with at least ``min_fraction`` of the image area, largest first."""
    labels = color_labels(rgb)
    h, w = labels.shape
    blobs = []
    for k in np.unique(labels):
        if k == 0:
            continue
        comp, n = connected_components(labels == k)
        areas = np.bincount(comp.ravel(), minlength=n + 1)
        for j in range(1, n + 1):
            if areas[j] < max(min_fraction * h * w, 1):
                continue
            m = comp == j
            ys, xs = np.nonzero(m)
            blobs.append(
                Blob(
                    color=COLOR_NAMES[k - 1],
                    mask=m,
                    area=int(areas[j]),
                    centroid=(float((xs.mean() + 0.5) / w), float((ys.mean() + 0.5) / h)),
                    box=(xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h),
                )
            )
    blobs.sort(key=lambda b: -b.area)
    return blobs
