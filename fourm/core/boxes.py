"""The one check of a box list (the raw-sample ``bboxes`` value, :mod:`fourm.core.schema`), shared by
import (:func:`fourm.data.user.readers.check_bboxes`, strict) and generation's box-map inputs
(:class:`fourm.codecs.BoxMapCodec`, lenient about ranges: the map clips, see
:func:`fourm.codecs.box_map.render_box_map`)::

    boxes = check_boxes([{"label": "dog", "box": [0.1, 0.2, 0.5, 0.8]}])       # strict: [0, 1], ordered
    boxes = check_boxes(generated, normalised=False)                             # any finite numbers

Imports nothing of fourm but its errors.
"""

from __future__ import annotations

import math

from fourm.errors import FourmError

BOX_SHAPE = "{'label': str, 'box': [x0, y0, x1, y1]}"


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_boxes(value: object, normalised: bool = True) -> list[dict]:
    """``[{"label": str, "box": [x0, y0, x1, y1]}, ...]`` (a ``{"bboxes": [...]}`` works too) ->
    a list of ``{"label", "box"}`` with float coordinates; FourmError (one line, ``box {i} ...``) for
    the first bad box. Every box needs a string label and four finite numbers; ``normalised``: also
    within [0, 1] (a 1e-6 tolerance, then clipped) with x0 <= x1 and y0 <= y1."""
    if isinstance(value, dict) and "bboxes" in value:
        value = value["bboxes"]
    if not isinstance(value, (list, tuple)):
        raise FourmError(f"bboxes must be a list, got {type(value).__name__}")
    out = []
    for i, b in enumerate(value):
        box = b.get("box") if isinstance(b, dict) else None
        label = b.get("label") if isinstance(b, dict) else None
        if not isinstance(label, str) or not isinstance(box, (list, tuple)) or len(box) != 4:
            raise FourmError(f"box {i} must be {BOX_SHAPE}, got {b!r}"[:200])
        if not all(_is_number(x) for x in box):
            raise FourmError(f"box {i} has non-numeric or non-finite coordinates {list(box)!r}"[:200])
        x0, y0, x1, y1 = (float(x) for x in box)
        if normalised:
            if min(x0, y0, x1, y1) < -1e-6 or max(x0, y0, x1, y1) > 1 + 1e-6:
                raise FourmError(f"box {i} {list(box)} is not normalised to [0, 1]")
            if x1 < x0 or y1 < y0:
                raise FourmError(f"box {i} {list(box)} has x1 < x0 or y1 < y0")
            x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in (x0, y0, x1, y1))
        out.append({"label": label, "box": [x0, y0, x1, y1]})
    return out
