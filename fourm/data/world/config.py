"""``WorldConfig``: the knobs of the procedural world (image size, object counts, vocabulary, looks)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from fourm.data.world.palette import COLORS, GROUNDS, OBJECT_DEPTH_RANGE, SHAPES, depth_gap
from fourm.errors import FourmError
from fourm.utils.config import Config, coerce

BOX_ORDERS = ("caption", "left_to_right")
CAPTION_ORDERS = ("random", "left_to_right", "mixed")
MAX_OBJECTS = 5  # base depths must fit in the object depth range with a gap larger than any relief


@dataclass
class WorldConfig(Config):
    """How scenes are sampled and rendered. Every field is validated; bad values raise FourmError."""

    size: int = 64  # image side in pixels
    min_objects: int = 1
    max_objects: int = 4
    shapes: tuple[str, ...] = SHAPES  # subset of palette.SHAPES (semseg ids never change)
    colors: tuple[str, ...] = tuple(COLORS)  # subset of palette.COLORS
    color_jitter: int = 8  # max per-channel deviation from the named colour (0-255 scale)
    relief: float = 0.35  # object relief height as a fraction of its radius (0 = flat)
    grounds: tuple[str, ...] = ("stone",)  # named grounds (palette.GROUNDS), one drawn per scene
    texture_amplitude: float = 0.03  # the ground's fixed texture, relative brightness modulation
    min_visible_fraction: float = 0.5  # every object keeps at least this much of its area visible
    max_tries: int = 100  # scene resamples before dropping one object
    box_order: str = "caption"  # bboxes listed as the caption names the objects, or "left_to_right" (box centres)
    # captions name the objects in a random order, "left_to_right" (centres) or "mixed" (either, half each)
    caption_order: str = "random"

    def validate(self) -> None:
        if not 16 <= self.size <= 1024:
            raise FourmError(f"invalid value for 'size': {self.size} (expected 16..1024 pixels)")
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise FourmError(
                f"invalid object counts min_objects={self.min_objects}, max_objects={self.max_objects} "
                f"(expected 1 <= min_objects <= max_objects <= {MAX_OBJECTS})"
            )
        for field, chosen, known in (
            ("shapes", self.shapes, SHAPES),
            ("colors", self.colors, tuple(COLORS)),
            ("grounds", self.grounds, tuple(GROUNDS)),
        ):
            if not chosen:
                raise FourmError(f"invalid value for '{field}': empty (choose from {', '.join(known)})")
            for name in chosen:
                if name not in known:
                    raise FourmError(
                        f"unknown {field[:-1]} '{name}' in '{field}' (known: {', '.join(known)})"
                    )
            if len(set(chosen)) != len(chosen):
                raise FourmError(f"invalid value for '{field}': {list(chosen)} has duplicates")
        if self.box_order not in BOX_ORDERS:
            raise FourmError(f"invalid value for 'box_order': '{self.box_order}' (expected {' or '.join(BOX_ORDERS)})")
        if self.caption_order not in CAPTION_ORDERS:
            raise FourmError(
                f"invalid value for 'caption_order': '{self.caption_order}' (expected {', '.join(CAPTION_ORDERS)})"
            )
        if len(self.shapes) * len(self.colors) < self.max_objects:
            raise FourmError(
                f"max_objects={self.max_objects} needs at least that many (colour, shape) pairs, "
                f"got {len(self.shapes)} shapes x {len(self.colors)} colours"
            )
        ranges = {
            "color_jitter": (self.color_jitter, 0, 40),
            "relief": (self.relief, 0.0, 0.5),
            "texture_amplitude": (self.texture_amplitude, 0.0, 0.2),
            "min_visible_fraction": (self.min_visible_fraction, 0.05, 1.0),
            "max_tries": (self.max_tries, 1, 100_000),
        }
        for name, (value, lo, hi) in ranges.items():
            if not lo <= value <= hi:
                raise FourmError(f"invalid value for '{name}': {value} (expected {lo}..{hi})")

        if (self.max_objects - 1) * depth_gap(self.relief) > OBJECT_DEPTH_RANGE[1] - OBJECT_DEPTH_RANGE[0]:
            raise FourmError(
                f"relief={self.relief} is too high for max_objects={self.max_objects}: objects would not "
                "fit in the depth range (lower one of them)"
            )

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, coerce(getattr(self, f.name), hints[f.name], f.name))
        self.validate()
