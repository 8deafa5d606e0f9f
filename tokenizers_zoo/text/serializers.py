"""Serializers between structured modalities (bboxes, color_palette, metadata) and token text.

Formats (tokens from :mod:`tokenizers_zoo.text.vocabulary`, words are plain lower-case text)::

    bboxes         "circle [x=6] [y=6] [x=25] [y=25] red square [x=32] [y=32] [x=57] [y=57]"
    color_palette  "[palette=2] [c=15] [c=0] [c=0] [c=1] [c=1] [c=2]"        (r g b per colour)
    metadata       "[meta:brightness] [m=16] [meta:object_count] [m=3] [meta:dominant_color] dark red"

Encoding bins values (labels and category words are lower-cased and whitespace-normalised), so
``text_to_x(x_to_text(x)) == quantize_x(x)`` and ``x_to_text(text_to_x(t)) == t`` for serialised ``t``.
Decoding is strict by default (malformed text raises FourmError naming the problem); ``strict=False``
skips malformed groups (for model outputs) and returns what parsed; a ``failures`` list given to a
lenient ``text_to_*`` receives one ``(group text, error message)`` pair per skipped group.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from fourm.errors import FourmError
from tokenizers_zoo.text.vocabulary import (
    UNK,
    MetadataField,
    MetadataSpec,
    color_token,
    coord_token,
    is_bracket_token,
    meta_key_token,
    meta_value_token,
    palette_size_token,
    parse_token,
)

T = TypeVar("T")
_COORD_TOLERANCE = 1e-6
_BOX_ORDER = ("x", "y", "x", "y")


def _round(x: float) -> int:
    """Round half up (independent of Python's banker's rounding)."""
    return int(math.floor(x + 0.5))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and math.isfinite(float(v))


def _words(text: str, what: str) -> str:
    """Lower-case, whitespace-normalised words; FourmError if empty or holding bracket tokens."""
    if not isinstance(text, str):
        raise FourmError(f"{what} must be a string, got {text!r}")
    words = [w if w == UNK else w.lower() for w in text.split()]
    if not words:
        raise FourmError(f"{what} is empty (expected one or more words)")
    for w in words:
        if w != UNK and ("[" in w or "]" in w):
            raise FourmError(
                f"{what} {text!r} contains a bracket in {w!r} (brackets are reserved for tokens)"
            )
    return " ".join(words)


def _check_text(text: Any) -> list[str]:
    if not isinstance(text, str):
        raise FourmError(f"expected token text (a string), got {type(text).__name__}")
    return text.split()


Failures = list[tuple[str, str]]  # (text of a skipped group, why it did not parse)


def _decode_groups(
    groups: Iterable[Any],
    parse: Callable[[Any], T],
    strict: bool,
    failures: Failures | None = None,
    show: Callable[[Any], str] = str,
) -> list[T]:
    """Parse each group; strict: let FourmError through; lenient: skip groups that fail (recorded
    in ``failures`` as (``show(group)``, message) when given)."""
    out = []
    for group in groups:
        try:
            out.append(parse(group))
        except FourmError as e:
            if strict:
                raise
            if failures is not None:
                failures.append((show(group), str(e)))
    return out


# ----------------------------------------------------------------------------------------- boxes


def coord_to_bin(value: float, bins: int) -> int:
    """Coordinate in [0, 1] -> bin index in [0, bins - 1] (bin i stands for i / (bins - 1))."""
    return min(bins - 1, max(0, _round(float(value) * (bins - 1))))


def bin_to_coord(index: int, bins: int) -> float:
    """Bin index -> coordinate in [0, 1]."""
    return index / (bins - 1)


def _check_bins(bins: int, what: str) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise FourmError(f"{what} must be an integer >= 2, got {bins!r}")


def _validated_box(item: Any) -> tuple[str, list[float]]:
    """(normalised label, [x0, y0, x1, y1]) of a ``{"label", "box"}`` dict, or FourmError."""
    if not isinstance(item, Mapping) or "label" not in item or "box" not in item:
        raise FourmError(f"expected a box {{'label': str, 'box': [x0, y0, x1, y1]}}, got {item!r}")
    label = _words(item["label"], "box label")
    coords = item["box"]
    if not isinstance(coords, Iterable) or isinstance(coords, str | Mapping):
        raise FourmError(f"box '{label}': expected 4 coordinates [x0, y0, x1, y1], got {coords!r}")
    coords = list(coords)
    if len(coords) != 4 or not all(_is_number(c) for c in coords):
        raise FourmError(f"box '{label}': expected 4 numbers [x0, y0, x1, y1], got {coords!r}")
    coords = [float(c) for c in coords]
    if any(c < -_COORD_TOLERANCE or c > 1 + _COORD_TOLERANCE for c in coords):
        raise FourmError(f"box '{label}': coordinates {coords} must lie in [0, 1]")
    x0, y0, x1, y1 = coords
    if x0 > x1 or y0 > y1:
        raise FourmError(f"box '{label}': coordinates {coords} must satisfy x0 <= x1 and y0 <= y1")
    return label, coords


def quantize_bboxes(boxes: Sequence[Mapping], bins: int) -> list[dict]:
    """Boxes as they come back from text: labels normalised, coordinates snapped to ``bins`` bins."""
    _check_bins(bins, "coordinate bins")
    out = []
    for item in boxes:
        label, coords = _validated_box(item)
        out.append({"label": label, "box": [bin_to_coord(coord_to_bin(c, bins), bins) for c in coords]})
    return out


def bboxes_to_text(boxes: Sequence[Mapping], bins: int) -> str:
    """``[{"label": "circle", "box": [x0, y0, x1, y1]}, ...]`` -> ``"circle [x=..] [y=..] [x=..] [y=..] ..."``."""
    _check_bins(bins, "coordinate bins")
    parts = []
    for item in boxes:
        label, coords = _validated_box(item)
        tokens = [coord_token(axis, coord_to_bin(c, bins)) for axis, c in zip(_BOX_ORDER, coords)]
        parts.append(" ".join([label, *tokens]))
    return " ".join(parts)


def _box_groups(words: list[str]) -> list[tuple[list[str], list[str], bool]]:
    """Split words into (label words, bracket tokens after them, is_last) groups."""
    groups: list[tuple[list[str], list[str]]] = []
    label: list[str] = []
    tail: list[str] = []
    for w in words:
        if is_bracket_token(w) and w != UNK:
            tail.append(w)
        else:
            if tail:
                groups.append((label, tail))
                label, tail = [], []
            label.append(w)
    if label or tail:
        groups.append((label, tail))
    return [(lab, tl, i == len(groups) - 1) for i, (lab, tl) in enumerate(groups)]


def _parse_box_group(group: tuple[list[str], list[str], bool], bins: int) -> dict:
    label_words, tail, is_last = group
    text = _short(" ".join(label_words + tail))
    if not label_words:
        raise FourmError(f"box without a label: '{text}' (expected 'label [x=..] [y=..] [x=..] [y=..]')")
    label = " ".join(label_words)
    if any(("[" in w or "]" in w) and w != UNK for w in label_words):
        raise FourmError(f"malformed box label '{_short(label)}' (brackets are reserved for tokens)")
    indices = []
    for tok in tail:
        parsed = parse_token(tok)
        if parsed is None or parsed[0] not in ("x", "y"):
            raise FourmError(f"unknown token '{tok}' in box '{text}' (expected [x=i] or [y=i])")
        axis, index = parsed
        if index >= bins:
            raise FourmError(f"coordinate token '{tok}' out of range in box '{text}' (bins: 0..{bins - 1})")
        indices.append((axis, index))
    if len(indices) < 4 and is_last:
        raise FourmError(f"truncated box '{text}': expected 4 coordinate tokens, got {len(indices)}")
    if len(indices) != 4:
        raise FourmError(f"box '{text}' has {len(indices)} coordinate tokens, expected 4")
    if tuple(axis for axis, _ in indices) != _BOX_ORDER:
        raise FourmError(f"box '{text}': coordinates must come in the order [x=..] [y=..] [x=..] [y=..]")
    (_, x0), (_, y0), (_, x1), (_, y1) = indices
    if x0 > x1 or y0 > y1:
        raise FourmError(f"box '{text}' is inverted (expected x0 <= x1 and y0 <= y1)")
    return {"label": label, "box": [bin_to_coord(i, bins) for i in (x0, y0, x1, y1)]}


def text_to_bboxes(text: str, bins: int, strict: bool = True, failures: Failures | None = None) -> list[dict]:
    """Inverse of :func:`bboxes_to_text`; ``strict=False`` skips malformed boxes instead of raising
    (and lists them in ``failures``, see the module docstring)."""
    _check_bins(bins, "coordinate bins")
    groups = _box_groups(_check_text(text))
    return _decode_groups(
        groups, lambda g: _parse_box_group(g, bins), strict, failures, lambda g: " ".join(g[0] + g[1])
    )


def parse_bbox_string(text: str) -> list[dict]:
    """Parse a user string ``"circle 0.1 0.1 0.4 0.4; red square 0.5 0.5 0.9 0.9"`` into boxes.

    Each ``;``-separated part is ``label x0 y0 x1 y1`` with ``0 <= x0 < x1 <= 1`` and
    ``0 <= y0 < y1 <= 1``; an empty string gives no boxes. Coordinates are not binned.
    """
    if not isinstance(text, str):
        raise FourmError(f"expected a box string like 'circle 0.1 0.1 0.4 0.4', got {text!r}")
    boxes = []
    for part in text.split(";"):
        fields = part.split()
        if not fields:
            continue
        shown = " ".join(fields)
        if len(fields) < 5:
            raise FourmError(f"malformed box '{shown}': expected 'label x0 y0 x1 y1'")
        try:
            coords = [float(f) for f in fields[-4:]]
        except ValueError:
            raise FourmError(
                f"malformed box '{shown}': expected 'label x0 y0 x1 y1' with 4 numbers at the end"
            ) from None
        label = " ".join(fields[:-4])
        if "[" in label or "]" in label:
            raise FourmError(f"malformed box '{shown}': brackets are not allowed in labels")
        if not all(math.isfinite(c) for c in coords):
            raise FourmError(f"malformed box '{shown}': coordinates must be finite numbers")
        x0, y0, x1, y1 = coords
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise FourmError(
                f"box '{shown}': box coordinates must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1"
            )
        boxes.append({"label": label, "box": coords})
    return boxes


# ---------------------------------------------------------------------------------------- palette


def channel_to_level(value: float, levels: int) -> int:
    """Channel value in [0, 255] -> level index in [0, levels - 1]."""
    return min(levels - 1, max(0, _round(float(value) * (levels - 1) / 255)))


def level_to_channel(index: int, levels: int) -> int:
    """Level index -> channel value in [0, 255]."""
    return _round(index * 255 / (levels - 1))


def _validated_colors(colors: Sequence, levels: int, max_colors: int | None) -> list[list[float]]:
    _check_bins(levels, "colour levels")
    if levels > 256:
        raise FourmError(f"colour levels must be <= 256, got {levels}")
    if isinstance(colors, str) or not isinstance(colors, Iterable):
        raise FourmError(f"expected a palette (list of [r, g, b]), got {colors!r}")
    colors = list(colors)
    if max_colors is not None and len(colors) > max_colors:
        raise FourmError(f"palette has {len(colors)} colours, more than the maximum {max_colors}")
    out = []
    for color in colors:
        rgb = list(color) if isinstance(color, Iterable) and not isinstance(color, str) else None
        if rgb is None or len(rgb) != 3 or not all(_is_number(c) and 0 <= c <= 255 for c in rgb):
            raise FourmError(f"palette colour {color!r}: expected [r, g, b] with values in [0, 255]")
        out.append([float(c) for c in rgb])
    return out


def quantize_palette(colors: Sequence, levels: int, max_colors: int | None = None) -> list[list[int]]:
    """Palette as it comes back from text: every channel snapped to one of ``levels`` values."""
    return [
        [level_to_channel(channel_to_level(c, levels), levels) for c in rgb]
        for rgb in _validated_colors(colors, levels, max_colors)
    ]


def palette_to_text(colors: Sequence, levels: int, max_colors: int | None = None) -> str:
    """``[[r, g, b], ...]`` (0-255) -> ``"[palette=k] [c=..] [c=..] [c=..] ..."``."""
    rgbs = _validated_colors(colors, levels, max_colors)
    tokens = [palette_size_token(len(rgbs))]
    tokens += [color_token(channel_to_level(c, levels)) for rgb in rgbs for c in rgb]
    return " ".join(tokens)


def _color_level(tok: str, levels: int) -> int:
    parsed = parse_token(tok)
    if parsed is None or parsed[0] != "c":
        what = "token" if is_bracket_token(tok) else "word"
        raise FourmError(f"unexpected {what} '{tok}' in palette text (expected [c=i] colour tokens)")
    if parsed[1] >= levels:
        raise FourmError(f"colour token '{tok}' out of range (levels: 0..{levels - 1})")
    return parsed[1]


def text_to_palette(
    text: str, levels: int, max_colors: int | None = None, strict: bool = True, failures: Failures | None = None
) -> list[list[int]]:
    """Inverse of :func:`palette_to_text`; ``strict=False`` skips malformed colours instead of raising
    (and lists them, a missing or wrong ``[palette=k]`` count included, in ``failures``)."""
    _check_bins(levels, "colour levels")
    words = _check_text(text)
    if not strict and failures is not None:
        try:  # the strict parse names what is wrong with the whole text (size token, count)
            text_to_palette(text, levels, max_colors, strict=True)
        except FourmError as e:
            failures.append((_short(text), str(e)))
        failures = None  # reported once for the whole text
    size = parse_token(words[0]) if words else None
    count: int | None = None
    if size is not None and size[0] == "palette":
        count = size[1]
        words = words[1:]
        if max_colors is not None and count > max_colors and strict:
            raise FourmError(
                f"palette size token '[palette={count}]' out of range (max {max_colors} colours)"
            )
    elif strict:
        first = _short(words[0]) if words else ""
        raise FourmError(f"palette text must start with a [palette=k] token, got '{first}'")
    if strict:
        levels_ = [_color_level(w, levels) for w in words]
        if len(levels_) < 3 * count:
            raise FourmError(
                f"truncated palette: '[palette={count}]' announces {3 * count} colour tokens, got {len(levels_)}"
            )
        if len(levels_) > 3 * count:
            raise FourmError(
                f"palette has {len(levels_)} colour tokens after '[palette={count}]', expected {3 * count}"
            )
    triples = [words[i : i + 3] for i in range(0, len(words) - len(words) % 3, 3)]
    colors = _decode_groups(
        triples, lambda t: [level_to_channel(_color_level(w, levels), levels) for w in t], strict
    )
    limit = min(c for c in (count, max_colors, len(colors)) if c is not None)
    return colors[:limit]


# --------------------------------------------------------------------------------------- metadata


def _numeric_grid(spec: MetadataField, bins: int) -> tuple[float, int]:
    """(step between bin values, number of usable bins) for a numeric metadata field.

    Floats use all ``bins`` over [lo, hi]. Ints use a step of at least 1 so every bin is a distinct
    integer (a small range such as 0..8 is then exact).
    """
    span = spec.hi - spec.lo
    if spec.kind == "int":
        step = max(1.0, span / (bins - 1))
        return step, int(math.floor(span / step + 1e-9)) + 1
    return span / (bins - 1), bins


def metadata_value_to_bin(value: float, spec: MetadataField, bins: int) -> int:
    """Numeric value (clipped to [lo, hi]) -> value bin index."""
    step, count = _numeric_grid(spec, bins)
    clipped = min(spec.hi, max(spec.lo, float(value)))
    return min(count - 1, max(0, _round((clipped - spec.lo) / step)))


def metadata_bin_to_value(index: int, spec: MetadataField, bins: int) -> float | int:
    """Value bin index -> the value it stands for (an int for ``int`` fields)."""
    step, _ = _numeric_grid(spec, bins)
    value = spec.lo + index * step
    return _round(value) if spec.kind == "int" else float(value)


def _metadata_items(meta: Mapping, spec: MetadataSpec, strict: bool) -> list[tuple[str, MetadataField, Any]]:
    """(key, field, value) in spec order; unknown keys raise (strict) or are dropped."""
    if not isinstance(meta, Mapping):
        raise FourmError(f"expected metadata as a mapping of key -> value, got {meta!r}")
    unknown = [k for k in meta if k not in spec.keys]
    if unknown and strict:
        raise FourmError(f"unknown metadata key '{unknown[0]}' (known: {', '.join(spec.keys)})")
    items = []
    for key, field_spec in spec.keys.items():
        if key not in meta:
            continue
        value = meta[key]
        if field_spec.kind == "category":
            value = _words(value, f"metadata '{key}'")
            if field_spec.choices and value not in field_spec.choices:
                raise FourmError(
                    f"metadata '{key}' = {value!r} is not one of {', '.join(field_spec.choices)}"
                )
        elif not _is_number(value):
            raise FourmError(f"metadata '{key}' = {value!r}: expected a finite number")
        items.append((key, field_spec, value))
    return items


def quantize_metadata(meta: Mapping, spec: MetadataSpec, strict: bool = True) -> dict:
    """Metadata as it comes back from text: numbers binned (clipped to range), words normalised."""
    out = {}
    for key, field_spec, value in _metadata_items(meta, spec, strict):
        if field_spec.kind == "category":
            out[key] = value
        else:
            index = metadata_value_to_bin(value, field_spec, spec.bins)
            out[key] = metadata_bin_to_value(index, field_spec, spec.bins)
    return out


def metadata_to_text(meta: Mapping, spec: MetadataSpec, strict: bool = True) -> str:
    """``{"brightness": 0.5, ...}`` -> ``"[meta:brightness] [m=16] ..."`` in spec key order.

    ``strict=False`` drops keys the spec does not know instead of raising.
    """
    tokens = []
    for key, field_spec, value in _metadata_items(meta, spec, strict):
        tokens.append(meta_key_token(key))
        if field_spec.kind == "category":
            tokens.append(value)
        else:
            tokens.append(meta_value_token(metadata_value_to_bin(value, field_spec, spec.bins)))
    return " ".join(tokens)


def _metadata_groups(words: list[str]) -> list[tuple[str | None, list[str], bool]]:
    """Split words into (key token or None, value words, is_last) groups at each [meta:*] token."""
    groups: list[tuple[str | None, list[str]]] = []
    for w in words:
        parsed = parse_token(w)
        if parsed is not None and parsed[0] == "meta":
            groups.append((w, []))
        elif groups:
            groups[-1][1].append(w)
        else:
            groups.append((None, [w]))
    return [(key, vals, i == len(groups) - 1) for i, (key, vals) in enumerate(groups)]


def _parse_metadata_group(group: tuple[str | None, list[str], bool], spec: MetadataSpec) -> tuple[str, Any]:
    key_token, values, is_last = group
    if key_token is None:
        raise FourmError(
            f"metadata text must start with a [meta:key] token, got '{_short(' '.join(values))}'"
        )
    key = parse_token(key_token)[1]
    if key not in spec.keys:
        raise FourmError(f"unknown metadata key '{key}' (known: {', '.join(spec.keys)})")
    field_spec = spec.keys[key]
    if not values:
        where = "truncated metadata entry" if is_last else "metadata entry"
        raise FourmError(f"{where} '{key_token}' has no value")
    if field_spec.kind == "category":
        value = _words(" ".join(values), f"metadata '{key}'")
        if field_spec.choices and value not in field_spec.choices:
            raise FourmError(f"metadata '{key}' = {value!r} is not one of {', '.join(field_spec.choices)}")
        return key, value
    if len(values) != 1:
        raise FourmError(f"metadata '{key}' expects one [m=i] token, got '{_short(' '.join(values))}'")
    parsed = parse_token(values[0])
    if parsed is None or parsed[0] != "m":
        raise FourmError(f"metadata '{key}' expects a [m=i] value token, got '{values[0]}'")
    _, count = _numeric_grid(field_spec, spec.bins)
    if parsed[1] >= count:
        raise FourmError(
            f"metadata value token '{values[0]}' out of range for '{key}' (bins: 0..{count - 1})"
        )
    return key, metadata_bin_to_value(parsed[1], field_spec, spec.bins)


def text_to_metadata(text: str, spec: MetadataSpec, strict: bool = True, failures: Failures | None = None) -> dict:
    """Inverse of :func:`metadata_to_text`; ``strict=False`` skips malformed or repeated entries
    (and lists them in ``failures``)."""
    parsed = _decode_groups(
        _metadata_groups(_check_text(text)),
        lambda g: _parse_metadata_group(g, spec),
        strict,
        failures,
        lambda g: " ".join(([g[0]] if g[0] else []) + g[1]),
    )
    found: dict[str, Any] = {}
    for key, value in parsed:
        if key in found:
            if strict:
                raise FourmError(f"metadata key '{key}' appears more than once")
            if failures is not None:
                failures.append((meta_key_token(key), f"metadata key '{key}' appears more than once (first kept)"))
            continue
        found[key] = value
    return {key: found[key] for key in spec.keys if key in found}
