"""Read one modality from one user file into the raw-sample format, at the file's own resolution.

Every reader raises :class:`SkipSample` (missing / corrupt file, bad format or annotation) instead of
crashing, so one bad file only costs its sample.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from fourm.core.boxes import check_boxes
from fourm.core.image_kinds import IMAGE_KINDS
from fourm.data.user.report import BAD_ANNOTATION, BAD_FORMAT, CORRUPT_FILE, MISSING_FILE, SkipSample
from fourm.errors import FourmError
from fourm.utils.images import open_checked, to_8bit, unit_array

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

# File extensions accepted per modality in aligned folders, in order of preference.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "rgb": IMAGE_EXTENSIONS,
    "depth": (".png", ".npy", ".tif", ".tiff"),
    "semseg": (".png", ".npy"),
    "normals": (".png", ".npy"),
    "edges": (".png", ".npy"),
    "caption": (".txt",),
    "bboxes": (".json",),
    "metadata": (".json",),
    "color_palette": (".json",),
}


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:120]


def open_image(path: Path, draft_side: int | None = None) -> Image.Image:
    """Open, EXIF-rotate and fully decode an image file (SkipSample if missing or corrupt).

    ``draft_side`` lets JPEG decoding downscale by a power of two while keeping the shorter side
    at least that long (much faster for big photos).
    """
    if not path.is_file():
        raise SkipSample(MISSING_FILE, path)
    try:
        return open_checked(path, draft_side)  # also refuses oversized images (decompression bombs)
    except FourmError as e:
        raise SkipSample(CORRUPT_FILE, path, _short(e)) from None


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SkipSample(MISSING_FILE, path)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # truncated / not an .npy / pickled objects
        raise SkipSample(CORRUPT_FILE, path, _short(e)) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf" or arr.size == 0:
        raise SkipSample(BAD_FORMAT, path, f"expected a numeric array, got {getattr(arr, 'dtype', type(arr))}")
    return arr


def _as_2d(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise SkipSample(BAD_FORMAT, path, f"expected a single-channel (H, W) array, got shape {arr.shape}")
    return arr


def read_rgb(path: Path, draft_side: int | None = None) -> np.ndarray:
    """Any colour/grey image -> uint8 (H, W, 3) (alpha dropped, palette expanded; 16-bit and float
    grey images scaled to 0-255, not clipped)."""
    return np.asarray(to_8bit(open_image(path, draft_side)).convert("RGB"), dtype=np.uint8)


def read_depth(path: Path) -> np.ndarray:
    """8-/16-bit PNG (divided by 255 / 65535) or .npy/.tif (kept if in [0, 1], else min-max) -> float32 [0, 1].

    Non-finite .npy values become 1 (farthest).
    """
    if path.suffix.lower() == ".npy":
        arr = _as_2d(_load_npy(path), path).astype(np.float64)
    else:
        img = open_image(path)
        if img.mode == "L":
            return np.asarray(img, dtype=np.float32) / np.float32(255.0)
        if img.mode.startswith("I;16") or img.mode == "I":  # / 65535 (min-max beyond 16 bits)
            return unit_array(img).astype(np.float32)
        if img.mode != "F":
            raise SkipSample(BAD_FORMAT, path, f"depth must be a single-channel 8/16-bit image, got mode {img.mode}")
        arr = np.asarray(img, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        raise SkipSample(BAD_FORMAT, path, "depth has no finite values")
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    if lo < 0.0 or hi > 1.0:
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return np.where(finite, arr, 1.0).astype(np.float32)


def read_semseg(path: Path) -> np.ndarray:
    """Single-channel (or palette-indexed) PNG / integer .npy of class ids -> uint8 (H, W)."""
    if path.suffix.lower() == ".npy":
        arr = _as_2d(_load_npy(path), path)
    else:
        img = open_image(path)
        if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise SkipSample(BAD_FORMAT, path, f"semseg must be a single-channel PNG of class ids, got mode {img.mode}")
        arr = np.asarray(img)
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise SkipSample(BAD_FORMAT, path, "semseg class ids must be integers")
    if arr.min() < 0 or arr.max() > 255:
        raise SkipSample(BAD_FORMAT, path, f"semseg class ids must be in 0-255, got {arr.min()}-{arr.max()}")
    return arr.astype(np.uint8)


def read_normals(path: Path) -> np.ndarray:
    """RGB PNG (already (n*0.5+0.5)*255) or float .npy (H, W, 3) in [-1, 1] -> uint8 (H, W, 3)."""
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise SkipSample(BAD_FORMAT, path, f"normals must be (H, W, 3), got shape {arr.shape}")
        if arr.dtype == np.uint8:
            return arr
        return np.rint((np.clip(np.nan_to_num(arr), -1.0, 1.0) * 0.5 + 0.5) * 255.0).astype(np.uint8)
    return np.asarray(to_8bit(open_image(path)).convert("RGB"), dtype=np.uint8)


def read_edges(path: Path) -> np.ndarray:
    """Any image / .npy, nonzero = edge -> uint8 (H, W) in {0, 1}.

    16-bit and float images are first scaled to 0-255 (a value that rounds to 0 there is no edge),
    so their faint noise does not turn every pixel into an edge."""
    if path.suffix.lower() == ".npy":
        arr = _as_2d(_load_npy(path), path)
    else:
        img = open_image(path)
        arr = np.asarray(img if img.mode in ("L", "1") else to_8bit(img).convert("L"))
    return IMAGE_KINDS["edges"].from_grey(arr, "L")  # nonzero = edge, as generation reads edge pictures


def read_text(path: Path) -> str:
    """UTF-8 text file -> stripped string (SkipSample if missing, undecodable or empty)."""
    if not path.is_file():
        raise SkipSample(MISSING_FILE, path)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SkipSample(CORRUPT_FILE, path, _short(e)) from None
    if not text:
        raise SkipSample(BAD_ANNOTATION, path, "empty caption")
    return text


def read_json(path: Path) -> object:
    if not path.is_file():
        raise SkipSample(MISSING_FILE, path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SkipSample(CORRUPT_FILE, path, _short(e)) from None


# -- validation of structured values (from .json files or metadata.jsonl columns) ----------------
def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_bboxes(value: object, where: object) -> list[dict]:
    """``[{"label": str, "box": [x0, y0, x1, y1]}]`` normalised to [0, 1] (a ``{"bboxes": [...]}`` works
    too): :func:`fourm.core.boxes.check_boxes`, the check generation's box maps use, as a SkipSample."""
    try:
        return check_boxes(value, normalised=True)
    except FourmError as e:
        raise SkipSample(BAD_ANNOTATION, where, str(e)) from None


def check_palette(value: object, where: object) -> list[list[int]]:
    """``[[r, g, b], ...]`` with integers in 0-255."""
    ok = isinstance(value, list) and all(
        isinstance(c, (list, tuple)) and len(c) == 3 and all(_is_number(v) and v == int(v) and 0 <= v <= 255 for v in c)
        for c in value
    )
    if not ok:
        raise SkipSample(BAD_ANNOTATION, where, "color_palette must be a list of [r, g, b] integers in 0-255")
    return [[int(v) for v in c] for c in value]  # type: ignore[union-attr]


def check_metadata(value: object, where: object) -> dict:
    """A mapping of scalars; bools become ints, nested values JSON strings, nulls are dropped."""
    if not isinstance(value, dict):
        raise SkipSample(BAD_ANNOTATION, where, f"metadata must be a JSON object, got {type(value).__name__}")
    out: dict = {}
    for k, v in value.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, float) and not math.isfinite(v):
            continue
        elif not isinstance(v, (int, float, str)):
            v = json.dumps(v, sort_keys=True)
        out[str(k)] = v
    return out
