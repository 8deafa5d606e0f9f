"""Do generated images differ with the caption? Pixel distances between generated images of
different prompts vs between samples of the same prompt.

``images`` is (P, S, H, W[, C]): S samples generated for each of P prompts (uint8 0-255 or float in
[0, 1]). The distance of two images is their mean absolute pixel difference in [0, 1] (over every
pixel and channel). Then

- ``different``: the mean distance over all pairs of images of two different prompts,
- ``same``: the mean distance over all pairs of samples of one prompt (needs S >= 2),
- ``ratio`` = different / same.

A model that ignores its condition draws every image from one distribution: ``ratio`` ~ 1. A model
whose images follow the caption gives ``ratio`` > 1 (samples of one caption agree more than images of
two captions). ``reference`` (optional, (P, H, W[, C])): the real images of the prompts, whose mean
pairwise distance says how different the images of those captions are in the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fourm.errors import FourmError


def _flat(images: np.ndarray, name: str, leading: int) -> np.ndarray:
    """(*lead, H, W[, C]) -> float32 (*lead, D) in [0, 1]."""
    arr = np.asarray(images)
    if arr.ndim not in (leading + 2, leading + 3):
        raise FourmError(f"{name} must have shape ({', '.join('PS'[:leading])}, H, W[, C]), got {arr.shape}")
    if arr.dtype.kind == "u" or arr.dtype.kind == "i":
        out = arr.astype(np.float32) / np.float32(255.0)
    elif arr.dtype.kind == "f":
        out = arr.astype(np.float32)
    else:
        raise FourmError(f"{name} must be numeric (uint8 0-255 or float 0-1), got dtype {arr.dtype}")
    if not np.isfinite(out).all():
        raise FourmError(f"{name} holds non-finite values")
    return out.reshape(*arr.shape[:leading], -1)


def pairwise_l1(x: np.ndarray, max_floats: int = 1 << 24) -> np.ndarray:
    """Mean absolute difference between every pair of rows of ``x`` (N, D) -> (N, N), in row chunks
    of at most ``max_floats`` temporary values (64 MiB)."""
    n = len(x)
    chunk = max(1, max_floats // max(1, n * x.shape[1]))
    out = np.zeros((n, n), dtype=np.float64)
    for start in range(0, n, chunk):
        block = x[start:start + chunk]
        out[start:start + len(block)] = np.abs(block[:, None, :] - x[None, :, :]).mean(-1)
    return out


def caption_diversity(images: np.ndarray, reference: np.ndarray | None = None) -> dict[str, Any]:
    """Pixel distances of ``images`` (P, S, H, W[, C]) within and across prompts (see the module
    docstring) -> {"prompts", "samples", "different", "same", "ratio"[, "reference"]}."""
    x = _flat(images, "images", 2)
    p, s = x.shape[:2]
    if p < 2:
        raise FourmError(f"need images of >= 2 prompts to compare different prompts, got {p}")
    if s < 2:
        raise FourmError(f"need >= 2 samples per prompt to compare samples of one prompt, got {s}")
    dist = pairwise_l1(x.reshape(p * s, -1))
    prompt = np.repeat(np.arange(p), s)
    same_prompt = prompt[:, None] == prompt[None, :]
    upper = np.triu(np.ones_like(same_prompt), k=1)
    different = float(dist[upper & ~same_prompt].mean())
    same = float(dist[upper & same_prompt].mean())
    result: dict[str, Any] = {
        "prompts": int(p),
        "samples": int(s),
        "distance": "mean absolute pixel difference in [0, 1]",
        "different": different,
        "same": same,
        "ratio": different / same if same > 0 else float("inf"),
    }
    if reference is not None:
        ref = _flat(reference, "reference", 1)
        if len(ref) != p:
            raise FourmError(f"reference has {len(ref)} images for {p} prompts")
        if ref.shape[1] != x.shape[2]:
            raise FourmError(f"reference images have {ref.shape[1]} values each, generated ones {x.shape[2]}")
        result["reference"] = float(pairwise_l1(ref)[np.triu_indices(p, k=1)].mean())
    return result


def format_diversity(result: dict[str, Any]) -> str:
    """One line: different vs same caption, their ratio (and the real images' distance)."""
    line = (f"pixel distance of generated images: different captions {result['different']:.4f}, same caption "
            f"{result['same']:.4f} (ratio {result['ratio']:.2f}; {result['prompts']} captions x "
            f"{result['samples']} samples)")
    if "reference" in result:
        line += f"; real images of different captions {result['reference']:.4f}"
    return line
