"""The raw-sample format every data source produces and every tokenizer consumes.

A raw sample is a plain dict; each present key holds one modality:

==============  =========================================  ==========================================
key             type                                        meaning
==============  =========================================  ==========================================
id              str                                         unique within its dataset
rgb             uint8 ndarray (H, W, 3)                     colour image
depth           float32 ndarray (H, W) in [0, 1]            normalised depth, larger = farther
semseg          uint8 ndarray (H, W)                        class ids, 0 = background
normals         uint8 ndarray (H, W, 3)                     surface normals, (n * 0.5 + 0.5) * 255
edges           uint8 ndarray (H, W) in {0, 1}              edge map
caption         str                                         free text
bboxes          list[{"label": str, "box": [x0,y0,x1,y1]}]  boxes normalised to [0, 1], x right, y down
metadata        dict[str, float | int | str]                scalar facts about the image
color_palette   list[[r, g, b]] (ints 0-255)                dominant colours, most frequent first
<vector key>    float32 list/ndarray (D,)                   a global embedding (e.g. caption_embedding)
==============  =========================================  ==========================================

Vector keys are not fixed: a dataset declares each one (name -> {"dim": D, ...}) under ``vectors``
in its ``fourm_dataset.json`` (:func:`fourm.data.raw_dataset.add_vector_column`).

On disk (Hugging Face ``datasets``) images are fixed-shape arrays (depth stored as float16),
``metadata`` is a JSON string, the rest map directly; :func:`features` gives the schema and
:func:`to_record` / :func:`from_record` convert.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from fourm.errors import FourmError

IMAGE_KEYS = ("rgb", "depth", "semseg", "normals", "edges")
TEXT_KEYS = ("caption",)
STRUCTURED_KEYS = ("bboxes", "metadata", "color_palette")
ALL_KEYS = ("id",) + IMAGE_KEYS + TEXT_KEYS + STRUCTURED_KEYS

# (channels or None for 2-D, in-memory dtype, on-disk dtype)
IMAGE_LAYOUT: dict[str, tuple[int | None, str, str]] = {
    "rgb": (3, "uint8", "uint8"),
    "depth": (None, "float32", "float16"),
    "semseg": (None, "uint8", "uint8"),
    "normals": (3, "uint8", "uint8"),
    "edges": (None, "uint8", "uint8"),
}


def features(size: int, keys: tuple[str, ...] = ALL_KEYS):
    """``datasets.Features`` for raw samples of ``size`` x ``size`` images holding ``keys``."""
    import datasets as hfd

    spec: dict[str, Any] = {}
    for k in keys:
        if k in IMAGE_LAYOUT:
            ch, _, disk = IMAGE_LAYOUT[k]
            spec[k] = hfd.Array3D((size, size, ch), disk) if ch else hfd.Array2D((size, size), disk)
        elif k in ("id", "caption", "metadata"):
            spec[k] = hfd.Value("string")
        elif k == "bboxes":
            spec[k] = hfd.Sequence({"label": hfd.Value("string"), "box": hfd.Sequence(hfd.Value("float32"), length=4)})
        elif k == "color_palette":
            spec[k] = hfd.Sequence(hfd.Sequence(hfd.Value("uint8"), length=3))
        else:
            raise FourmError(f"unknown raw-sample key '{k}' (known: {', '.join(ALL_KEYS)})")
    return hfd.Features(spec)


def vector_feature(dim: int):
    """``datasets`` feature of a declared vector key: a fixed-length float32 list of ``dim``."""
    import datasets as hfd

    if dim < 1:
        raise FourmError(f"vector dimension must be >= 1, got {dim}")
    return hfd.Sequence(hfd.Value("float32"), length=dim)


def to_record(sample: dict) -> dict:
    """Raw sample -> a row for :func:`features` (metadata to JSON, depth to float16)."""
    out = {}
    for k, v in sample.items():
        if k == "metadata":
            out[k] = json.dumps(v, sort_keys=True)
        elif k in IMAGE_LAYOUT:
            out[k] = np.asarray(v, dtype=IMAGE_LAYOUT[k][2])
        elif k == "bboxes":
            out[k] = {"label": [b["label"] for b in v], "box": [list(map(float, b["box"])) for b in v]}
        else:
            out[k] = v
    return out


def from_record(record: dict) -> dict:
    """Inverse of :func:`to_record` (accepts rows from ``datasets`` in python or numpy format)."""
    out = {}
    for k, v in record.items():
        if v is None:
            continue
        if k == "metadata":
            out[k] = json.loads(v) if isinstance(v, str) else dict(v)
        elif k in IMAGE_LAYOUT:
            out[k] = np.asarray(v, dtype=IMAGE_LAYOUT[k][1])
        elif k == "bboxes":
            if isinstance(v, dict):  # columnar form from datasets
                out[k] = [{"label": lab, "box": [float(x) for x in box]} for lab, box in zip(v["label"], v["box"])]
            else:
                out[k] = [{"label": b["label"], "box": [float(x) for x in b["box"]]} for b in v]
        elif k == "color_palette":
            out[k] = [[int(c) for c in col] for col in v]
        elif k in ("id", "caption"):
            out[k] = str(v)
        else:
            out[k] = v
    return out


def check_image(key: str, array: np.ndarray, size: int | None = None) -> None:
    """Raise FourmError if ``array`` does not have the layout of image modality ``key``."""
    if key not in IMAGE_LAYOUT:
        raise FourmError(f"'{key}' is not an image modality (image modalities: {', '.join(IMAGE_LAYOUT)})")
    ch = IMAGE_LAYOUT[key][0]
    want_ndim = 3 if ch else 2
    if array.ndim != want_ndim or (ch and array.shape[-1] != ch):
        shape = f"(H, W, {ch})" if ch else "(H, W)"
        raise FourmError(f"{key}: expected an array of shape {shape}, got {tuple(array.shape)}")
    if size is not None and array.shape[:2] != (size, size):
        raise FourmError(f"{key}: wrong image size {array.shape[1]}x{array.shape[0]} (expected {size}x{size})")
