"""Box maps: object boxes drawn on a coarse grid, so a model reads *where* the boxes are
(:class:`BoxMapCodec`: a box-map modality's values -> tokens).

A box map is an input-only image modality derived from a ``bboxes`` value
(``[{"label": "small red circle", "box": [x0, y0, x1, y1]}, ...]``, normalised, x right, y down).
Each of its ``grid x grid`` cells holds one token: 0 where no box covers the cell, ``1 + i`` where
the box that covers the cell most has label ``labels[i]``, ``len(labels) + 1`` for a label not in
the list. A label matches the longest entry of ``labels`` that ends it word for word
("small red circle" -> "red circle"), so the map can leave out words (the size) that the box extent
already shows.

A cell belongs to a box when the box covers at least ``MIN_COVER`` of it; where several do, the one
covering most wins, ties going to the later box (drawn on top). A box too small to cover any cell
that far still gets the cell that holds its centre, so small objects never vanish from the map.

The token grid is aligned with the image grids of the other modalities (cell (r, c) is the same
place as token (r, c) of an 8 x 8 rgb token grid): a model that learned to look up positions in an
image reads a box map the same way, which a box's coordinate tokens do not teach it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fourm.codecs.base import as_list, check_ids
from fourm.codecs.values import parse_value
from fourm.core.boxes import check_boxes
from fourm.errors import FourmError

MIN_COVER = 0.3  # share of a cell a box must cover to claim it


def label_id(label: str, labels: Sequence[str]) -> int:
    """Token of a box label: 1 + index of the longest entry of ``labels`` that ends it word for word,
    ``len(labels) + 1`` when none does."""
    words = str(label).lower().split()
    best, best_len = len(labels) + 1, 0
    for i, entry in enumerate(labels):
        e = entry.lower().split()
        if e and len(e) > best_len and words[-len(e):] == e:
            best, best_len = i + 1, len(e)
    return best


def _coverage(box: Sequence[float], grid: int) -> np.ndarray:
    """Share of each cell (grid, grid) that ``box`` [x0, y0, x1, y1] (normalised) covers."""
    edges = np.arange(grid + 1, dtype=np.float64) / grid
    x0, y0, x1, y1 = (float(v) for v in box)
    cover_x = np.clip(np.minimum(edges[1:], x1) - np.maximum(edges[:-1], x0), 0.0, None) * grid  # (grid,)
    cover_y = np.clip(np.minimum(edges[1:], y1) - np.maximum(edges[:-1], y0), 0.0, None) * grid
    return cover_y[:, None] * cover_x[None, :]


def render_box_map(boxes: Iterable[Mapping[str, Any]] | None, grid: int, labels: Sequence[str]) -> np.ndarray:
    """Boxes -> a (grid, grid) int64 map of label tokens (module doc). ``None`` or no boxes -> zeros.
    Boxes are clipped to [0, 1]; an empty or inverted box covers nothing but still claims its centre."""
    out = np.zeros((grid, grid), dtype=np.int64)
    best = np.zeros((grid, grid), dtype=np.float64)
    small: list[tuple[int, int, int]] = []
    for b in boxes or ():
        box = [min(max(float(v), 0.0), 1.0) for v in b["box"]]
        token = label_id(b.get("label", ""), labels)
        cover = _coverage(box, grid)
        claim = (cover >= MIN_COVER) & (cover >= best)
        out[claim], best[claim] = token, cover[claim]
        if not claim.any():
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            small.append((min(int(cy * grid), grid - 1), min(int(cx * grid), grid - 1), token))
    for r, c, token in small:
        out[r, c] = token
    return out


def box_map_tokens(boxes: Iterable[Mapping[str, Any]] | None, grid: int, labels: Sequence[str]) -> list[int]:
    """The map of :func:`render_box_map` as grid * grid tokens, row-major (a token row of the model)."""
    return render_box_map(boxes, grid, labels).reshape(-1).tolist()


class BoxMapCodec:
    """A box-map modality (``box_labels`` in its registry spec): the boxes of its ``data_key``
    (e.g. ``bboxes``) drawn on the token grid; input only, computed, never generated."""

    kind = "box_map"
    tokenizer = None  # nothing to save in a bundle

    def __init__(self, name: str, spec: Any) -> None:
        if not spec.box_labels:
            raise FourmError(f"modality '{name}' is not a box map (no box_labels)")
        self.name, self.source_kind = name, spec.data_key
        self.labels, self.grid = list(spec.box_labels), spec.grid_size
        self.length, self.vocab_size = spec.num_tokens, spec.vocab_size

    def normalize(self, value: Any) -> list[dict]:
        """One box list (or its string form, :mod:`fourm.codecs.values`), checked as import checks
        boxes (:func:`fourm.core.boxes.check_boxes`), coordinates not range-checked: the map clips them."""
        try:
            return check_boxes(parse_value("bboxes", value), normalised=False)
        except FourmError as e:
            raise FourmError(f"'{self.name}': {e}") from None

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Box lists -> (B, grid * grid) label tokens."""
        if prefix:
            raise FourmError(f"'{self.name}' is a box map: it has no prefix")
        rows = [box_map_tokens(self.normalize(v), self.grid, self.labels) for v in as_list(values, self.name)]
        return torch.tensor(rows, dtype=torch.long)

    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """(B, grid * grid) tokens -> one (grid, grid) uint8 label map per row."""
        ids = check_ids(self.name, tokens, self.vocab_size, self.length)
        return [row.reshape(self.grid, self.grid).numpy().astype(np.uint8) for row in ids]
