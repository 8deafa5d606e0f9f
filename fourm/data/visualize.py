"""Pictures of raw samples: colour maps for depth and segmentation, boxes, and the sample grid.

``save_sample_grid(samples, "grid.png")`` writes one row per sample and one column per modality:
images up-scaled, depth and semseg colour-mapped, normals as colour, edges white on black, rgb with
its boxes drawn, caption / metadata printed in a text panel, the colour palette as swatches.
No matplotlib needed.
"""

from __future__ import annotations

import functools
import textwrap
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fourm.core.image_kinds import (  # the colour maps' home; re-exported here
    CLASS_COLORS,
    IMAGE_KINDS,
    colorize_depth,
    colorize_semseg,
    depth_colormap,
    semseg_palette,
)
from fourm.core.schema import ALL_KEYS
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_path
from fourm.utils.outputs import png_info

__all__ = ["CLASS_COLORS", "colorize_depth", "colorize_semseg", "depth_colormap", "draw_boxes", "label_color",
           "sample_grid", "save_sample_grid", "semseg_palette"]

PAD = 2  # pixels between cells and around the grid
HEADER_HEIGHT = 16  # pixels of the column-title row
TEXT_WIDTH = 2  # text panels are this many image cells wide
BACKGROUND = (24, 24, 24)
PANEL = (40, 40, 40)
TEXT_COLOR = (230, 230, 230)

def label_color(label: str) -> tuple[int, int, int]:
    """A stable colour for a box label (same label -> same colour in every picture)."""
    return tuple(int(c) for c in CLASS_COLORS[zlib.crc32(label.encode()) % len(CLASS_COLORS)])


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font: the small scalable one if FreeType is there, else the bitmap one."""
    try:
        return ImageFont.load_default(size=9)
    except (ImportError, OSError, TypeError):
        return ImageFont.load_default()


def _text_on(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``color`` (by its luma)."""
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_tag(draw: ImageDraw.ImageDraw, rect: list[float], text: str, color: tuple[int, int, int],
               size: tuple[int, int], placed: list[tuple[float, float, float, float]]) -> None:
    """``text`` on a filled tag of the box's ``color``, shifted left where it would leave the picture,
    so a label reads on any object or ground: above the box, else inside its top edge, else below it,
    the first of these that fits in the picture and misses the tags already ``placed`` (appended to)."""
    font = _font()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left + 4, bottom - top + 3
    x = min(max(0.0, rect[0]), max(0.0, size[0] - tw))
    spots = [y for y in (rect[1] - th, rect[1] + 1, rect[3] + 1) if 0 <= y <= size[1] - th] or [max(0.0, rect[1] + 1)]
    tags = [(x, y, x + tw, y + th) for y in spots]
    tag = next((t for t in tags if not any(_overlaps(t, p) for p in placed)), tags[0])
    placed.append(tag)
    draw.rectangle([tag[0], tag[1], tag[2] - 1, tag[3] - 1], fill=color)
    draw.text((tag[0] + 2 - left, tag[1] + 1 - top), text, fill=_text_on(color), font=font)


def draw_boxes(rgb: np.ndarray, bboxes: list[dict], width: int = 1, labels: bool = True) -> np.ndarray:
    """A copy of uint8 (H, W, 3) ``rgb`` with normalised ``bboxes`` outlined (and labelled on a tag
    of the box's colour if the picture is large enough: 96 pixels or more)."""
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    w, h = img.size
    tags = []
    for b in bboxes:
        x0, y0, x1, y1 = b["box"]
        color = label_color(str(b.get("label", "")))
        rect = [x0 * w, y0 * h, max(x0 * w, x1 * w - 1), max(y0 * h, y1 * h - 1)]
        draw.rectangle(rect, outline=color, width=width)
        if labels and min(w, h) >= 96 and b.get("label"):
            tags.append((rect, str(b["label"]), color))
    placed: list[tuple[float, float, float, float]] = []
    for rect, text, color in tags:  # after every outline, so no outline crosses a label
        _label_tag(draw, rect, text, color, (w, h), placed)
    return np.asarray(img)


# -- the grid ----------------------------------------------------------------------------------
def _upscale(img: np.ndarray, cell: int) -> np.ndarray:
    """Nearest-neighbour resize of a uint8 (H, W, 3) image to (cell, cell, 3)."""
    if img.shape[:2] == (cell, cell):
        return img
    h, w = img.shape[:2]
    if cell % h == 0 and cell % w == 0 and h == w:
        return img.repeat(cell // h, 0).repeat(cell // w, 1)
    return np.asarray(Image.fromarray(img).resize((cell, cell), Image.Resampling.NEAREST))


def _as_picture(key: str, value: object) -> np.ndarray | None:
    """An image-like value as uint8 (H, W, 3), or None if it is not image-like."""
    if not isinstance(value, np.ndarray) or value.ndim not in (2, 3):
        return None
    spec = IMAGE_KINDS.get(key)
    if spec is not None and value.ndim == spec.ndim:  # colour maps of :mod:`fourm.core.image_kinds`
        picture = spec.picture(value)
        return np.repeat(picture[..., None], 3, axis=2) if picture.ndim == 2 else picture
    if value.ndim == 3 and value.shape[-1] == 3:
        return np.clip(value, 0, 255).astype(np.uint8) if value.dtype != np.uint8 else value
    if value.ndim == 2:  # unknown single-channel map: min-max grey
        v = value.astype(np.float64)
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        grey = np.zeros_like(v) if hi <= lo else (v - lo) / (hi - lo)
        return np.repeat(np.rint(np.nan_to_num(grey) * 255).astype(np.uint8)[..., None], 3, axis=2)
    return None


def _text_lines(key: str, value: object) -> list[str]:
    if key == "metadata" and isinstance(value, dict):
        return [f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in sorted(value.items())]
    if key == "bboxes" and isinstance(value, list):
        return [f"{b['label']} " + " ".join(f"{x:.2f}" for x in b["box"]) for b in value] or ["(no boxes)"]
    return [str(value)]


def _wrap(lines: list[str], width: int, char_w: float) -> list[str]:
    chars = max(4, int((width - 6) / char_w))
    return [w for line in lines for w in (textwrap.wrap(line, chars) or [""])]


def _draw_text_panel(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, height: int, lines: list[str]) -> None:
    """Word-wrapped text in a panel, in two sub-columns if that makes it fit; overflow ends in '...'."""
    font = _font()
    draw.rectangle([x, y, x + width - 1, y + height - 1], fill=PANEL)
    char_w = max(1.0, draw.textlength("abcdefghijklmnopqrstuvwxyz", font=font) / 26)
    line_h = max(8, font.getbbox("Hg")[3] + 1)
    max_lines = max(1, (height - 4) // line_h)
    n_cols, wrapped = 1, _wrap(lines, width, char_w)
    if len(wrapped) > max_lines and width >= 40 * char_w:
        halves = _wrap(lines, width // 2, char_w)
        if len(halves) <= 2 * max_lines or len(lines) > max_lines:
            n_cols, wrapped = 2, halves
    if len(wrapped) > n_cols * max_lines:
        wrapped = wrapped[: n_cols * max_lines - 1] + ["..."]
    for i, line in enumerate(wrapped):
        col, row = divmod(i, max_lines)
        draw.text((x + 3 + col * (width // 2), y + 2 + row * line_h), line, fill=TEXT_COLOR, font=font)


def _draw_palette(canvas: np.ndarray, x: int, y: int, cell: int, palette: list) -> None:
    """Colour swatches: equal vertical bands across the cell, most frequent first (left)."""
    colors = [c for c in palette if isinstance(c, (list, tuple)) and len(c) == 3]
    if not colors:
        return
    edges = np.linspace(0, cell, len(colors) + 1).round().astype(int)
    for c, x0, x1 in zip(colors, edges[:-1], edges[1:]):
        canvas[y : y + cell, x + x0 : x + x1] = np.clip(np.array(c), 0, 255).astype(np.uint8)


def grid_columns(samples: list[dict], modalities: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The modalities to show: ``modalities`` (each must be present) or every key present, schema order."""
    present = {k for s in samples for k in s if k != "id"}
    if modalities is None:
        cols = [k for k in ALL_KEYS if k in present] + sorted(present - set(ALL_KEYS))
    else:
        cols = list(dict.fromkeys(modalities))
        for m in cols:
            if m not in present:
                raise FourmError(f"modality '{m}' is in none of the samples (present: {', '.join(sorted(present))})")
    return cols


def _column_width(key: str, samples: list[dict], cell: int) -> int:
    image_like = any(_as_picture(key, s[key]) is not None for s in samples if key in s)
    return cell if image_like or key in ("color_palette", "bboxes") else TEXT_WIDTH * cell


def sample_grid(
    samples: list[dict], modalities: list[str] | tuple[str, ...] | None = None, scale: int = 2
) -> np.ndarray:
    """The grid picture as uint8 (H, W, 3): one row per sample, one titled column per modality.

    Size: ``W = PAD + sum(column_width + PAD)``, ``H = HEADER_HEIGHT + PAD + rows * (cell + PAD)``
    where ``cell = image_size * scale`` and text columns are ``TEXT_WIDTH * cell`` wide.
    """
    if not samples:
        raise FourmError("save_sample_grid needs at least one sample")
    if scale < 1:
        raise FourmError(f"scale must be >= 1, got {scale}")
    cols = grid_columns(samples, modalities)
    boxes_on_rgb = "rgb" in cols and "bboxes" in cols  # boxes are drawn on the rgb column
    if boxes_on_rgb:
        cols.remove("bboxes")
    if not cols:
        raise FourmError("the samples hold no modality to show")
    sides = [v.shape[0] for s in samples for v in s.values() if isinstance(v, np.ndarray) and v.ndim in (2, 3)]
    cell = (max(sides) if sides else 64) * scale
    widths = [_column_width(k, samples, cell) for k in cols]
    width = PAD + sum(w + PAD for w in widths)
    height = HEADER_HEIGHT + PAD + len(samples) * (cell + PAD)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    text_jobs: list[tuple[int, int, int, list[str]]] = []
    for r, sample in enumerate(samples):
        y = HEADER_HEIGHT + PAD + r * (cell + PAD)
        x = PAD
        for key, w in zip(cols, widths):
            value = sample.get(key)
            picture = _as_picture(key, value) if value is not None else None
            if picture is not None:
                picture = _upscale(picture, cell)
                if key == "rgb" and boxes_on_rgb and sample.get("bboxes"):
                    picture = draw_boxes(picture, sample["bboxes"], width=max(1, scale // 2))
                canvas[y : y + cell, x : x + w] = picture
            elif key == "bboxes" and isinstance(value, list):
                canvas[y : y + cell, x : x + w] = PANEL
                canvas[y : y + cell, x : x + w] = draw_boxes(canvas[y : y + cell, x : x + w], value)
            elif key == "color_palette" and value is not None:
                canvas[y : y + cell, x : x + w] = PANEL
                _draw_palette(canvas, x, y, cell, value)
            else:
                text_jobs.append((x, y, w, ["(missing)"] if value is None else _text_lines(key, value)))
            x += w + PAD
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    for x, y, w, lines in text_jobs:
        _draw_text_panel(draw, x, y, w, cell, lines)
    x = PAD
    for key, w in zip(cols, widths):
        title = "rgb + bboxes" if key == "rgb" and boxes_on_rgb else key
        tw = draw.textlength(title, font=_font())
        draw.text((x + max(0, (w - tw) / 2), 2), title, fill=TEXT_COLOR, font=_font())
        x += w + PAD
    return np.asarray(img)


def save_sample_grid(
    samples: list[dict],
    path: str | Path,
    modalities: list[str] | tuple[str, ...] | None = None,
    scale: int = 2,
    written_by: str | None = None,
) -> Path:
    """Write :func:`sample_grid` as a PNG at ``path`` (atomically); returns the path. ``written_by``: the
    command recorded in the PNG, so that a re-run may replace it (:mod:`fourm.utils.outputs`)."""
    path = Path(path)
    picture = sample_grid(samples, modalities, scale)
    with atomic_path(path) as tmp:
        extra = {"pnginfo": png_info(written_by)} if written_by else {}
        Image.fromarray(picture).save(tmp, format="PNG", **extra)
    return path
