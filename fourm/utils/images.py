"""Opening user images safely and reading high-bit-depth ones at their real range.

PIL's ``convert("RGB")`` / ``convert("L")`` clip 16-bit (``I;16``, ``I``) and float (``F``) pixels at
255 instead of scaling them, so a 16-bit PNG reads as nearly all white. Every image reader goes
through :func:`to_8bit` (images -> 0-255) or :func:`unit_array` (depth -> [0, 1]) instead::

    img = open_checked(path)                 # size-checked (decompression bombs), EXIF-rotated, decoded
    rgb = np.asarray(to_8bit(img).convert("RGB"))
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fourm.errors import FourmError

# Largest image accepted (pixels): 8192 x 8192. A bigger one (or a decompression bomb, a small file
# that declares huge dimensions) is refused before it is decoded.
MAX_IMAGE_PIXELS = 8192 * 8192

# Single-channel modes whose values go beyond 0-255 (16-bit and 32-bit integers, 32-bit floats).
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def check_image_size(img: Image.Image, path: object, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """FourmError when ``img`` (opened, not yet decoded) is larger than ``max_pixels``."""
    w, h = img.size
    if w * h > max_pixels:
        raise FourmError(
            f"image {path} is too large: {w}x{h} pixels (at most {max_pixels:,} pixels; a decompression bomb?)"
        )
    if w == 0 or h == 0:
        raise FourmError(f"image {path} is empty ({w}x{h} pixels)")


def open_checked(path: str | Path, draft_side: int | None = None) -> Image.Image:
    """Open ``path``, refuse oversized images, apply the EXIF orientation and decode it.

    Raises FourmError (one line) for a missing, oversized or undecodable file. ``draft_side`` lets
    JPEG decoding downscale by a power of two while keeping the shorter side at least that long.
    """
    path = Path(path)
    if not path.is_file():
        raise FourmError(f"image file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: the size is checked here
            img = Image.open(path)
            check_image_size(img, path)
            if draft_side and img.format == "JPEG" and min(img.size) > 2 * draft_side:
                scale = min(img.size) / (2 * draft_side)
                img.draft("RGB", (math.ceil(img.size[0] / scale), math.ceil(img.size[1] / scale)))
            img = ImageOps.exif_transpose(img)
            img.load()
    except FourmError:
        raise
    except Exception as e:  # decoders raise many types (OSError, SyntaxError, DecompressionBombError, ...)
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise FourmError(f"cannot read image {path}: {first}") from None
    return img


def unit_array(img: Image.Image) -> np.ndarray:
    """A single-channel image -> float64 (H, W) in [0, 1], scaled by its mode's range.

    8-bit (``L``, ``P``, ``1``): / 255; 16-bit: / 65535; 32-bit ``I``: / 65535 when its values fit
    16 bits, else min-max; float ``F``: as is when within [0, 1], else min-max. Non-finite values
    become 0.
    """
    if img.mode == "1":
        return np.asarray(img, dtype=np.float64)
    if img.mode in ("L", "P"):
        return np.asarray(img, dtype=np.float64) / 255.0
    if img.mode not in HIGH_BIT_MODES:
        return np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    arr = np.asarray(img).astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, dtype=np.float64)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    if img.mode == "F":
        in_range = lo >= 0.0 and hi <= 1.0
        scaled = arr if in_range else ((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr))
    elif lo >= 0.0 and hi <= 65535.0:
        scaled = arr / 65535.0
    else:
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return np.where(finite, np.clip(scaled, 0.0, 1.0), 0.0)


def to_8bit(img: Image.Image) -> Image.Image:
    """``img`` itself, or for a 16-bit / 32-bit / float image an ``L`` image scaled (not clipped)
    to 0-255 (see :func:`unit_array`)."""
    if img.mode not in HIGH_BIT_MODES:
        return img
    return Image.fromarray(np.rint(unit_array(img) * 255.0).astype(np.uint8))  # (H, W) uint8: mode L
