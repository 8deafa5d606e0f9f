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

from fourm.core.image_kinds import IMAGE_KINDS, ImageKind
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


def _pil_to_array(img: Image.Image, spec: ImageKind, num_classes: int | None) -> np.ndarray:
    """A PIL image -> a raw array of image kind ``spec`` (any size; rules in :mod:`fourm.core.image_kinds`)."""
    check_image_size(img, "given as a PIL image")
    if img.mode in HIGH_BIT_MODES:  # 16-bit / 32-bit / float: scaled to the kind's range, not clipped
        if spec.continuous:
            return unit_array(img).astype(np.float32)
        if not spec.labels:  # class ids are kept as they are
            img = to_8bit(img)
    if spec.channels == 3:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if img.mode in ("I", "F", "L", "1", "P") and not (img.mode == "P" and not spec.labels):
        return spec.from_grey(np.asarray(img), img.mode)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if _is_grey(rgb) or spec.binary:
        return _pil_to_array(Image.fromarray(rgb).convert("L"), spec, num_classes)
    return spec.from_picture(rgb, num_classes)  # colour-mapped depth / semseg -> the value


def load_image(value: Any, kind: str, size: int, num_classes: int | None = None) -> np.ndarray:
    """An image given as array, PIL image or file path -> the schema array of ``kind`` at ``size`` px.

    rgb / normals: uint8 (size, size, 3); depth: float32 (size, size) in [0, 1]; semseg: uint8 class
    ids; edges: uint8 {0, 1}. Non-square images are centre-cropped first, then resized as import
    resizes training data (:meth:`fourm.core.image_kinds.ImageKind.fit`).
    """
    spec = IMAGE_KINDS[kind]  # FourmError naming the known kinds
    if isinstance(value, (str, Path)):
        value = _open(value)
    arr = _pil_to_array(value, spec, num_classes) if isinstance(value, Image.Image) else spec.from_array(value)
    if arr.size == 0:
        raise FourmError(f"{kind}: the image is empty ({tuple(arr.shape)})")
    arr = spec.fit(arr, size)
    if spec.labels and num_classes is not None and int(arr.max()) >= num_classes:
        raise FourmError(f"{kind} class id {int(arr.max())} out of range (expected < {num_classes})")
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
