"""A picture of a retrieval result: the query, then the top-k items left to right, each titled with
its rank, score and id. Images are up-scaled (depth / semseg colour-mapped, rgb with its boxes if
given), text values (captions, metadata, ...) are printed in a panel.

    save_strip("strip.png", "caption: a red circle", "rgb", values, scores, ids)
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fourm.errors import FourmError
from fourm.generation.export import picture as export_picture
from fourm.utils.atomic import atomic_path
from fourm.utils.outputs import png_info

PAD = 4
TITLE = 26  # pixels of each cell's two title lines
BACKGROUND = (24, 24, 24)
PANEL = (40, 40, 40)
TEXT = (230, 230, 230)


def picture(modality: str, value: Any, cell: int) -> np.ndarray | None:
    """A raw image value as uint8 (cell, cell, 3), or None if ``value`` is not an image (colour
    mapping as in the generation output folder, :func:`fourm.generation.export.picture`)."""
    arr = export_picture(modality, value)
    if arr is None:
        return None
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.asarray(Image.fromarray(arr).resize((cell, cell), Image.Resampling.NEAREST))


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def _tail(text: str, chars: int) -> str:
    """``text`` cut to its last ``chars`` characters (ids differ at the end)."""
    return text if len(text) <= chars else "..." + text[-(chars - 3) :]


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, font) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=PANEL)
    chars = max(8, (x1 - x0 - 6) // 6)
    lines = textwrap.wrap(text, chars) or [""]
    max_lines = max(1, (y1 - y0 - 4) // 11)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + ["..."]
    for i, line in enumerate(lines):
        draw.text((x0 + 3, y0 + 2 + 11 * i), line, fill=TEXT, font=font)


def strip_picture(
    query: str | tuple[str, Any],
    modality: str,
    values: Sequence[Any],
    scores: Sequence[float],
    ids: Sequence[str],
    cell: int = 128,
) -> np.ndarray:
    """uint8 (H, W, 3): the query (a text, or (modality, raw value)) then one cell per result."""
    if not values:
        raise FourmError("a result strip needs at least one item")
    if not len(values) == len(scores) == len(ids):
        raise FourmError(f"got {len(values)} values, {len(scores)} scores and {len(ids)} ids")
    n = len(values) + 1
    width, height = PAD + n * (cell + PAD), PAD + TITLE + cell + PAD
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    chars = max(4, cell // 6)
    cells = [("query", query[1] if isinstance(query, tuple) else query, query[0] if isinstance(query, tuple) else "")]
    cells += [
        (f"#{r + 1}  score {float(s):.3f}\n{_tail(str(i), chars)}", v, modality)
        for r, (v, s, i) in enumerate(zip(values, scores, ids))
    ]
    for c, (title, value, mod) in enumerate(cells):
        x, y = PAD + c * (cell + PAD), PAD + TITLE
        draw.multiline_text((x, PAD), title, fill=TEXT, font=font, spacing=2)
        pic = picture(mod, value, cell)
        if pic is not None:
            img.paste(Image.fromarray(pic), (x, y))
        else:
            _panel(draw, (x, y, x + cell - 1, y + cell - 1), "(missing)" if value is None else _text(value), font)
    return np.asarray(img)


def save_strip(path: str | Path, *args: Any, written_by: str | None = None, **kwargs: Any) -> Path:
    """Write :func:`strip_picture` as a PNG at ``path`` (atomically); returns the path. ``written_by``: the
    command recorded in the PNG, so that a re-run may replace it (:mod:`fourm.utils.outputs`)."""
    path = Path(path)
    pic = strip_picture(*args, **kwargs)
    with atomic_path(path) as tmp:
        extra = {"pnginfo": png_info(written_by)} if written_by else {}
        Image.fromarray(pic).save(tmp, format="PNG", **extra)
    return path
