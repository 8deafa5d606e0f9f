"""Dominant colours of an image: seeded k-means++ in RGB on a pixel subsample."""

from __future__ import annotations

import numpy as np

from fourm.errors import FourmError

MAX_PIXELS = 1024  # k-means runs on at most this many pixels (a seeded random subsample)


def _kmeans_pp_init(pixels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each new centre drawn with probability proportional to squared distance."""
    centres = [pixels[rng.integers(len(pixels))]]
    d2 = ((pixels - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            break
        centres.append(pixels[rng.choice(len(pixels), p=d2 / total)])
        d2 = np.minimum(d2, ((pixels - centres[-1]) ** 2).sum(1))
    return np.stack(centres)


def _assign(pixels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d2 = (pixels**2).sum(1, keepdims=True) - 2 * pixels @ centres.T + (centres**2).sum(1)
    return d2.argmin(1)


def color_palette(rgb: np.ndarray, k: int = 5, seed: int = 0, iters: int = 20) -> list[list[int]]:
    """The ``k`` dominant colours of a uint8 (H, W, 3) image as ``[[r, g, b], ...]``, largest cluster first.

    Images with at most ``k`` distinct colours return exactly those colours; otherwise k-means++
    (seeded, deterministic) runs on a subsample of pixels and empty clusters are dropped.
    """
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise FourmError(f"color_palette expects an (H, W, 3) image, got shape {tuple(img.shape)}")
    if k < 1:
        raise FourmError(f"color_palette k must be >= 1, got {k}")
    pixels = img.reshape(-1, 3)
    if len(pixels) == 0:
        return []
    codes = pixels.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    uniq, counts = np.unique(codes, return_counts=True)
    if len(uniq) <= k:
        order = np.lexsort((uniq, -counts))  # by count, then colour value, for determinism
        return [[int(c >> 16) & 255, int(c >> 8) & 255, int(c) & 255] for c in uniq[order]]

    rng = np.random.default_rng(seed)
    sample = pixels if len(pixels) <= MAX_PIXELS else pixels[rng.choice(len(pixels), MAX_PIXELS, replace=False)]
    sample = sample.astype(np.float32)  # (N, 3)
    centres = _kmeans_pp_init(sample, k, rng)  # (k, 3)
    for _ in range(iters):
        labels = _assign(sample, centres)
        counts = np.bincount(labels, minlength=len(centres))
        sums = np.stack([np.bincount(labels, sample[:, c], minlength=len(centres)) for c in range(3)], 1)
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres).astype(np.float32)
        if np.allclose(new, centres, atol=0.5):
            centres = new
            break
        centres = new
    labels = _assign(sample, centres)
    counts = np.bincount(labels, minlength=len(centres))
    colours = np.clip(np.rint(centres), 0, 255).astype(int)
    order = sorted((i for i in range(len(centres)) if counts[i] > 0), key=lambda i: (-counts[i], tuple(colours[i])))
    return [colours[i].tolist() for i in order]
