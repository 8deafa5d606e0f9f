"""Depth errors between a predicted and a true depth map, over valid pixels only.

- ``mae``: mean |p - t|;  ``rmse``: sqrt(mean (p - t)^2);  ``abs_rel``: mean |p - t| / t;
- ``delta1``: fraction of pixels with max(p / t, t / p) < 1.25.

Valid pixels: finite truth above ``min_depth`` (abs-rel and delta divide by it), and ``mask`` if given.
"""

from __future__ import annotations

import numpy as np

from fourm.errors import FourmError

DELTA_THRESHOLD = 1.25


def depth_errors(
    pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None, min_depth: float = 1e-3
) -> dict[str, float]:
    """``{"mae", "rmse", "abs_rel", "delta1", "valid_fraction"}`` pooled over every valid pixel.

    ``pred``, ``true`` (and ``mask``, bool) share any shape, e.g. (H, W) or a batch (B, H, W)."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if p.shape != t.shape:
        raise FourmError(f"depth maps differ in shape: predicted {p.shape}, true {t.shape}")
    valid = np.isfinite(t) & (t > min_depth) & np.isfinite(p)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != t.shape:
            raise FourmError(f"depth mask shape {mask.shape} differs from the depth maps' {t.shape}")
        valid &= mask
    n = int(valid.sum())
    if n == 0:
        nan = float("nan")
        return {"mae": nan, "rmse": nan, "abs_rel": nan, "delta1": nan, "valid_fraction": 0.0}
    p, t = p[valid], t[valid]
    err = np.abs(p - t)
    ratio = np.maximum(p / t, t / np.maximum(p, 1e-12))
    return {
        "mae": float(err.mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "abs_rel": float((err / t).mean()),
        "delta1": float((ratio < DELTA_THRESHOLD).mean()),
        "valid_fraction": n / valid.size,
    }
