"""Modalities derived from RGB without any network: Canny edges, colour palette, image statistics."""

from __future__ import annotations

from collections.abc import Iterable

from fourm.data.derive.edges import canny_edges
from fourm.data.derive.metadata import METADATA_KEYS, image_metadata
from fourm.data.derive.palette import color_palette
from fourm.errors import FourmError

DERIVABLE = ("edges", "color_palette", "metadata")

__all__ = ["DERIVABLE", "METADATA_KEYS", "add_derived", "canny_edges", "color_palette", "image_metadata",
           "parse_derive"]


def parse_derive(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"edges,metadata"`` (or a list) -> validated tuple of derivable modality names."""
    if spec is None:
        return ()
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
    names = [n for n in names if n]
    for n in names:
        if n not in DERIVABLE:
            raise FourmError(f"cannot derive modality '{n}' (derivable from rgb: {', '.join(DERIVABLE)})")
    return tuple(dict.fromkeys(names))


def add_derived(sample: dict, which: Iterable[str] = DERIVABLE) -> dict:
    """A copy of ``sample`` with the ``which`` modalities computed from its ``rgb`` where missing.

    ``metadata`` is merged: computed statistics are added, existing keys are never overwritten.
    """
    which = parse_derive(which)
    out = dict(sample)
    needed = [w for w in which if w == "metadata" or w not in sample]
    if not needed:
        return out
    if "rgb" not in sample:
        raise FourmError(f"cannot derive {', '.join(needed)} for sample {sample.get('id', '?')!r}: it has no 'rgb'")
    rgb = sample["rgb"]
    if "edges" in needed:
        out["edges"] = canny_edges(rgb)
    if "color_palette" in needed:
        out["color_palette"] = color_palette(rgb)
    if "metadata" in needed:
        out["metadata"] = {**image_metadata(rgb), **dict(sample.get("metadata") or {})}
    return out
