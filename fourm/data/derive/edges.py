"""Canny edge detection in plain numpy: Gaussian blur, Sobel, non-maximum suppression, hysteresis."""

from __future__ import annotations

import functools

import numpy as np

from fourm.errors import FourmError


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _convolve_axis(img: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Correlate ``img`` (..., H, W) with a 1-D odd ``kernel`` along ``axis`` (-2 or -1), reflect padding."""
    r = len(kernel) // 2
    n = img.shape[axis]
    pad = [(0, 0)] * img.ndim
    pad[axis] = (r, r)
    padded = np.pad(img, pad, mode="reflect" if n > r else "edge")
    out = np.zeros_like(img)
    for i, w in enumerate(kernel):
        if w == 0:
            continue
        window = padded[..., i : i + n, :] if axis == -2 else padded[..., i : i + n]
        out += w * window
    return out


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of float (..., H, W) images; ``sigma <= 0`` returns them unchanged."""
    if sigma <= 0:
        return img
    k = _gaussian_kernel(sigma)
    return _convolve_axis(_convolve_axis(img, k, -2), k, -1)


def sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel derivatives (gx, gy) of float (..., H, W) images, scaled to intensity per pixel."""
    smooth = np.array([1.0, 2.0, 1.0], dtype=np.float32) / 4.0
    diff = np.array([-1.0, 0.0, 1.0], dtype=np.float32) / 2.0
    gx = _convolve_axis(_convolve_axis(img, smooth, -2), diff, -1)
    gy = _convolve_axis(_convolve_axis(img, diff, -2), smooth, -1)
    return gx, gy


@functools.lru_cache(maxsize=16)
def _step_response(sigma: float) -> float:
    """Peak gradient magnitude of blur + Sobel on a unit step: makes thresholds mean 'step contrast'."""
    step = np.zeros((3, 32), dtype=np.float32)
    step[:, 16:] = 1.0
    gx, _ = sobel(gaussian_blur(step, sigma))
    return float(np.abs(gx).max())


def _non_max_suppression(mag: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Keep pixels whose magnitude is a local maximum across the edge (4 quantised directions)."""
    h, w = mag.shape
    p = np.pad(mag, 1, mode="constant")

    def shifted(dy: int, dx: int) -> np.ndarray:
        return p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    angle = np.rad2deg(np.arctan2(gy, gx)) % 180.0  # gradient direction, 0 = along x
    sector = ((angle + 22.5) // 45).astype(np.int64) % 4  # 0: x, 1: diagonal \, 2: y, 3: diagonal /
    keep = np.zeros_like(mag, dtype=bool)
    tol = 1e-5  # ties (a step between two pixels) up to float rounding keep the backward pixel only
    for s, (dy, dx) in enumerate([(0, 1), (1, 1), (1, 0), (1, -1)]):
        sel = sector == s
        is_max = (mag >= shifted(dy, dx) - tol) & (mag > shifted(-dy, -dx) + tol)
        keep |= sel & is_max
    return np.where(keep, mag, 0.0)


def _hysteresis(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Weak pixels 8-connected (through weak pixels) to a strong pixel; iterative dilation."""
    h, w = weak.shape
    out = strong & weak
    while True:
        p = np.pad(out, 1, mode="constant")
        grown = np.zeros_like(out)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        grown &= weak
        if np.array_equal(grown, out):
            return out
        out = grown


def _color_gradients(rgb: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the (gx, gy) of the channel with the strongest gradient (catches isoluminant edges)."""
    img = np.asarray(rgb)
    scale = np.float32(1.0 / 255.0) if img.dtype == np.uint8 else np.float32(1.0)
    if img.ndim == 2:
        return sobel(gaussian_blur(img.astype(np.float32) * scale, sigma))
    if img.ndim != 3 or img.shape[-1] != 3:
        raise FourmError(f"canny_edges expects an (H, W, 3) or (H, W) image, got shape {tuple(img.shape)}")
    planes = np.ascontiguousarray(np.moveaxis(img, -1, 0), dtype=np.float32) * scale  # (3, H, W)
    gx, gy = sobel(gaussian_blur(planes, sigma))  # (3, H, W) each
    best = (gx * gx + gy * gy).argmax(0)[None]  # (1, H, W)
    return np.take_along_axis(gx, best, 0)[0], np.take_along_axis(gy, best, 0)[0]


def canny_edges(rgb: np.ndarray, sigma: float = 1.0, low: float = 0.1, high: float = 0.2) -> np.ndarray:
    """Canny edge map of an RGB (or grey) uint8 image -> uint8 (H, W) in {0, 1}.

    The gradient at each pixel is that of the colour channel where it is strongest. ``low``/``high``
    are hysteresis thresholds in units of step contrast: a clean step between levels a and b (in
    [0, 1]) of a channel has gradient |a - b| at its centre, whatever ``sigma``.
    """
    if not 0 <= low <= high:
        raise FourmError(f"canny thresholds must satisfy 0 <= low <= high, got low={low}, high={high}")
    if sigma < 0:
        raise FourmError(f"canny sigma must be >= 0, got {sigma}")
    gx, gy = _color_gradients(rgb, float(sigma))  # (H, W) each
    mag = np.hypot(gx, gy) / _step_response(float(sigma))
    thin = _non_max_suppression(mag, gx, gy)
    edges = _hysteresis(thin >= high, (thin >= low) & (thin > 0))
    return edges.astype(np.uint8)
