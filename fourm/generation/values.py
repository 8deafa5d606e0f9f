"""Raw condition values as users give them -> raw-sample values (``fourm.core.schema``) ready to tokenize.

Images: a schema array, a PIL image or an image file path, centre-cropped to a square and resized to
the tokenizer's size. Colour-mapped pictures written by ``fourm-generate`` read back: an RGB depth
picture is inverted through the depth colour map, an RGB semseg picture through the class palette.
Strings (command line) for the other modalities::

    bboxes         "circle 0.1 0.1 0.4 0.4; red square 0.5 0.5 0.9 0.9"  (label x0 y0 x1 y1; ...)
    color_palette  "255 0 0; 0 0 255" or "#ff0000 #0000ff" or JSON [[255, 0, 0], [0, 0, 255]]
    metadata       "object_count=3, dominant_color=red" or JSON {"object_count": 3}

    rgb = load_image("photo.png", "rgb", size=64)             # uint8 (64, 64, 3)
    boxes = parse_value("bboxes", "circle 0.1 0.1 0.4 0.4")   # [{"label": "circle", "box": [...]}]
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fourm.data.user.geometry import fit_image
from fourm.data.visualize import depth_colormap, semseg_palette
from fourm.errors import FourmError
from fourm.utils.images import HIGH_BIT_MODES, check_image_size, open_checked, to_8bit, unit_array
from tokenizers_zoo.text import parse_bbox_string

_HEX_RE = re.compile(r"^#?([0-9a-fA-F]{6})$")


# ------------------------------------------------------------------------------------------ images


def _open(path: str | Path) -> Image.Image:
    """Decode an image file: size-checked (decompression bombs), EXIF orientation applied."""
    return open_checked(path)


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _nearest_index(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index (H, W) of the closest colour of ``table`` (K, 3) for every pixel of ``rgb`` (H, W, 3)."""
    pixels = rgb.reshape(-1, 3).astype(np.int32)
    colors, inverse = np.unique(pixels, axis=0, return_inverse=True)
    dist = ((colors[:, None, :] - table[None, :, :].astype(np.int32)) ** 2).sum(-1)  # (U, K)
    return dist.argmin(1)[inverse.reshape(-1)].reshape(rgb.shape[:2]), dist.min(1)[inverse.reshape(-1)].reshape(rgb.shape[:2])


def _pil_to_array(img: Image.Image, kind: str, num_classes: int | None) -> np.ndarray:
    """A PIL image -> a raw array of modality kind ``kind`` (any size)."""
    check_image_size(img, "given as a PIL image")
    if img.mode in HIGH_BIT_MODES:  # 16-bit / 32-bit / float: scaled to the modality's range, not clipped
        if kind == "depth":
            return unit_array(img).astype(np.float32)
        if kind != "semseg":  # semseg: the values are class ids, kept as they are
            img = to_8bit(img)
    if kind in ("rgb", "normals"):
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if img.mode in ("I", "F", "L", "1", "P") and not (img.mode == "P" and kind != "semseg"):
        arr = np.asarray(img)
        if kind == "depth":
            scale = 255.0 if img.mode in ("L", "P") else (1.0 if img.mode == "F" else 65535.0)
            return (arr.astype(np.float64) / scale).astype(np.float32)
        if kind == "edges":
            return (arr.astype(np.float64) > (0 if img.mode == "1" else 127)).astype(np.uint8)
        return arr.astype(np.int64)  # semseg class ids
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if _is_grey(rgb) or kind == "edges":
        return _pil_to_array(Image.fromarray(rgb).convert("L"), kind, num_classes)
    if kind == "depth":  # colour-mapped depth (near = bright) -> depth
        index, _ = _nearest_index(rgb, depth_colormap())
        return (1.0 - index / 255.0).astype(np.float32)
    # colour-mapped semseg -> class ids (every colour must be a class colour)
    table = semseg_palette()[: num_classes or 256]
    index, dist = _nearest_index(rgb, table)
    if (dist > 0).any():
        y, x = map(int, np.argwhere(dist > 0)[0])
        raise FourmError(
            f"semseg image: pixel ({x}, {y}) has colour {tuple(int(c) for c in rgb[y, x])}, which is not a "
            "class colour (give class ids as a greyscale PNG or a colour-mapped picture from fourm-generate)"
        )
    return index.astype(np.int64)


def _array(value: Any, kind: str) -> np.ndarray:
    """A numpy/torch/list value -> a raw array in the schema dtype of ``kind``."""
    arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise FourmError(f"{kind}: expected a numeric image array, got dtype {arr.dtype}")
    want_ndim = 3 if kind in ("rgb", "normals") else 2
    if arr.ndim != want_ndim or (want_ndim == 3 and arr.shape[-1] != 3):
        shape = "(H, W, 3)" if want_ndim == 3 else "(H, W)"
        raise FourmError(f"{kind}: expected an array of shape {shape}, got {tuple(arr.shape)}")
    if kind in ("rgb", "normals"):
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0  # float images in [0, 1]
        return np.clip(np.nan_to_num(arr.astype(np.float64)), 0, 255).round().astype(np.uint8)
    if kind == "depth":
        if np.issubdtype(arr.dtype, np.integer):
            arr = arr / (255.0 if arr.dtype == np.uint8 else 65535.0)
        return np.clip(np.nan_to_num(arr.astype(np.float32), nan=1.0), 0.0, 1.0)
    if kind == "edges":
        return (arr > 0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating) and not np.equal(np.round(arr), arr).all():
        raise FourmError("semseg: expected integer class ids, got fractional values")
    if arr.size and int(arr.min()) < 0:
        raise FourmError(f"semseg: class ids must be >= 0, got {int(arr.min())}")
    return arr.astype(np.int64)


def _fit(arr: np.ndarray, kind: str, size: int) -> np.ndarray:
    """Centre-crop + resize with import's geometry (:func:`fourm.data.user.geometry.fit_image`)."""
    if kind == "semseg":
        if int(arr.max(initial=0)) > 255:
            raise FourmError(f"semseg: class id {int(arr.max())} out of range (expected < 256)")
        return fit_image(arr.astype(np.uint8), kind, size).astype(np.int64)
    if kind == "depth":
        return fit_image(arr.astype(np.float32), kind, size)
    return fit_image(arr.astype(np.uint8), kind, size)


def load_image(value: Any, kind: str, size: int, num_classes: int | None = None) -> np.ndarray:
    """An image given as array, PIL image or file path -> the schema array of ``kind`` at ``size`` px.

    rgb / normals: uint8 (size, size, 3); depth: float32 (size, size) in [0, 1]; semseg: uint8 class
    ids; edges: uint8 {0, 1}. Non-square images are centre-cropped first.
    """
    if kind not in ("rgb", "normals", "depth", "semseg", "edges"):
        raise FourmError(f"'{kind}' is not an image modality kind (expected rgb, normals, depth, semseg or edges)")
    if isinstance(value, (str, Path)):
        value = _open(value)
    arr = _pil_to_array(value, kind, num_classes) if isinstance(value, Image.Image) else _array(value, kind)
    if arr.size == 0:
        raise FourmError(f"{kind}: the image is empty ({tuple(arr.shape)})")
    arr = _fit(arr, kind, size)
    if kind == "semseg":
        if num_classes is not None and int(arr.max()) >= num_classes:
            raise FourmError(f"semseg class id {int(arr.max())} out of range (expected < {num_classes})")
        return arr.astype(np.uint8)
    return arr


# ------------------------------------------------------------------------------------------ strings


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FourmError(f"malformed {what} JSON {text!r}: {e.msg}") from None


def parse_palette(text: str) -> list[list[int]]:
    """``"255 0 0; 0 0 255"``, ``"#ff0000 #0000ff"`` or a JSON list -> ``[[r, g, b], ...]``."""
    text = text.strip()
    if text.startswith("["):
        value = _json(text, "color_palette")
        if not isinstance(value, list):
            raise FourmError(f"color_palette JSON must be a list of [r, g, b], got {text!r}")
        return value
    colors = []
    if ";" in text:
        parts = [p for p in text.split(";") if p.strip()]
    else:  # "#rrggbb #rrggbb" or a single "r g b"
        parts = text.replace(",", " ").split() if "#" in text else [text]
    for part in parts:
        part = part.strip()
        match = _HEX_RE.match(part)
        if match:
            h = match.group(1)
            colors.append([int(h[i : i + 2], 16) for i in (0, 2, 4)])
            continue
        fields = part.replace(",", " ").split()
        try:
            rgb = [int(f) for f in fields]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise FourmError(
                f"malformed colour '{part}' (expected 'r g b' with values 0-255, or #rrggbb; colours separated by ';')"
            )
        colors.append(rgb)
    if not colors:
        raise FourmError("empty color_palette (expected colours like '255 0 0; 0 0 255')")
    return colors


def _scalar(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_metadata(text: str) -> dict[str, Any]:
    """``"object_count=3, dominant_color=red"`` or a JSON object -> a metadata dict."""
    text = text.strip()
    if text.startswith("{"):
        value = _json(text, "metadata")
        if not isinstance(value, dict):
            raise FourmError(f"metadata JSON must be an object, got {text!r}")
        return value
    out: dict[str, Any] = {}
    for part in re.split(r"[,;]", text):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise FourmError(f"malformed metadata entry '{part.strip()}' (expected key=value, e.g. object_count=3)")
        out[key.strip()] = _scalar(value.strip())
    if not out:
        raise FourmError("empty metadata (expected key=value pairs, e.g. 'object_count=3, dominant_color=red')")
    return out


def parse_value(kind: str, value: Any) -> Any:
    """A sequence value of modality ``kind``; strings are parsed (see the module docstring)."""
    if not isinstance(value, str):
        return value
    if kind == "bboxes":
        return _json(value, "bboxes") if value.strip().startswith("[") else parse_bbox_string(value)
    if kind == "color_palette":
        return parse_palette(value)
    if kind == "metadata":
        return parse_metadata(value)
    return value
