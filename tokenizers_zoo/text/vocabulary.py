"""The structured part of the text vocabulary: special tokens, span sentinels and the bracketed tokens
that boxes, colour palettes and metadata are written with.

Every token is generated from a :class:`StructuredVocabConfig`; :func:`structured_tokens` lists them in
a fixed order, so their ids (0, 1, ... in that order) never depend on the caption corpus::

    [PAD] [SOS] [EOS] [UNK] [MASK]          special tokens ([PAD] is id 0)
    [S_0] .. [S_{n-1}]                      span sentinels (T5-style span masking)
    [x=0] .. [x=B-1], [y=0] .. [y=B-1]      box coordinate bins, one set per axis
    [palette=0] .. [palette=K]              palette size (number of colours that follow)
    [c=0] .. [c=L-1]                        colour channel levels
    [meta:KEY] for each known key           metadata key tokens
    [m=0] .. [m=M-1]                        metadata value bins

Design choice for boxes: one shared set of bins per axis (not separate xmin/xmax tokens); the order
``[x=x0] [y=y0] [x=x1] [y=y1]`` is implied by position after the label words. Colour channels are
likewise shared bins in r, g, b order. Bin ``i`` of ``B`` coordinate bins stands for ``i / (B - 1)``,
so 0 and 1 are exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from fourm.errors import FourmError
from fourm.utils.config import Config

PAD, SOS, EOS, UNK, MASK = "[PAD]", "[SOS]", "[EOS]", "[UNK]", "[MASK]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, SOS, EOS, UNK, MASK)

_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOKEN_RE = re.compile(r"^\[(?:(x|y|c|m|palette)=(\d+)|S_(\d+)|meta:([^\[\]\s]+))\]$")


def sentinel_token(i: int) -> str:
    """``[S_i]``: the i-th span sentinel."""
    return f"[S_{i}]"


def coord_token(axis: str, i: int) -> str:
    """``[x=i]`` or ``[y=i]``: coordinate bin ``i`` on ``axis``."""
    return f"[{axis}={i}]"


def color_token(i: int) -> str:
    """``[c=i]``: colour channel level ``i``."""
    return f"[c={i}]"


def palette_size_token(k: int) -> str:
    """``[palette=k]``: a palette of ``k`` colours follows."""
    return f"[palette={k}]"


def meta_key_token(key: str) -> str:
    """``[meta:key]``: the metadata entry ``key`` follows."""
    return f"[meta:{key}]"


def meta_value_token(i: int) -> str:
    """``[m=i]``: metadata value bin ``i``."""
    return f"[m={i}]"


def is_bracket_token(word: str) -> bool:
    """Whether a whitespace-separated word looks like a bracketed vocabulary token ``[...]``."""
    return len(word) >= 2 and word[0] == "[" and word[-1] == "]"


def parse_token(word: str) -> tuple[str, int | str] | None:
    """Parse a structured token: ``"[x=3]"`` -> ``("x", 3)``, ``"[S_2]"`` -> ``("S", 2)``,
    ``"[meta:brightness]"`` -> ``("meta", "brightness")``; anything else -> None."""
    m = _TOKEN_RE.match(word)
    if m is None:
        return None
    kind, number, sentinel, key = m.groups()
    if kind is not None:
        return kind, int(number)
    if sentinel is not None:
        return "S", int(sentinel)
    return "meta", key


@dataclass
class MetadataField(Config):
    """How one metadata key is written: numeric kinds are binned over ``[lo, hi]`` (values outside are
    clipped); ``category`` values are written as plain lower-case words (restricted to ``choices``
    when given)."""

    kind: Literal["float", "int", "category"] = "float"
    lo: float = 0.0
    hi: float = 1.0
    choices: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.kind != "category" and not self.lo < self.hi:
            raise FourmError(f"metadata range must satisfy lo < hi, got lo={self.lo}, hi={self.hi}")
        if self.kind == "int" and (self.lo != int(self.lo) or self.hi != int(self.hi)):
            raise FourmError(f"int metadata needs integer lo/hi, got lo={self.lo}, hi={self.hi}")
        for choice in self.choices:
            if choice != " ".join(choice.lower().split()) or not choice or "[" in choice or "]" in choice:
                raise FourmError(
                    f"metadata choice {choice!r} must be non-empty lower-case words without brackets"
                )

    def __post_init__(self) -> None:
        self.validate()


# The keys the project's data produce: image statistics (fourm.data.derive.metadata) and scene facts
# of the procedural world (fourm.data.world.annotations). Other data sets configure their own keys.
_WORLD_SHAPES = ("circle", "square", "triangle", "star", "hexagon")


def _default_metadata_keys() -> dict[str, MetadataField]:
    keys = {
        "brightness": MetadataField("float", 0.0, 1.0),
        "contrast": MetadataField("float", 0.0, 0.5),
        "saturation": MetadataField("float", 0.0, 1.0),
        "colorfulness": MetadataField("float", 0.0, 0.6),
        "warmth": MetadataField("float", -1.0, 1.0),
        "entropy": MetadataField("float", 0.0, 1.0),
        "sharpness": MetadataField("float", 0.0, 0.05),
        "object_count": MetadataField("int", 0.0, 8.0),
        "dominant_color": MetadataField("category"),
        "dominant_shape": MetadataField("category"),
        "mean_depth": MetadataField("float", 0.0, 1.0),
        "min_depth": MetadataField("float", 0.0, 1.0),
        "object_coverage": MetadataField("float", 0.0, 1.0),
        "occlusion": MetadataField("int", 0.0, 1.0),
        "min_visible_fraction": MetadataField("float", 0.0, 1.0),
    }
    keys.update({f"num_{shape}": MetadataField("int", 0.0, 8.0) for shape in _WORLD_SHAPES})
    return keys


@dataclass
class MetadataSpec(Config):
    """The known metadata keys (in serialisation order) and the number ``bins`` of value tokens."""

    keys: dict[str, MetadataField] = field(default_factory=_default_metadata_keys)
    bins: int = 32

    def validate(self) -> None:
        if self.bins < 2:
            raise FourmError(f"metadata bins must be >= 2, got {self.bins}")
        for key, spec in self.keys.items():
            if not _KEY_RE.match(key):
                raise FourmError(f"metadata key {key!r} must match [a-z][a-z0-9_]* (e.g. 'object_count')")
            if not isinstance(spec, MetadataField):
                raise FourmError(f"metadata key {key!r}: expected a MetadataField, got {spec!r}")
            spec.validate()

    def __post_init__(self) -> None:
        # Accept plain dicts for fields (e.g. MetadataSpec(keys={"x": {"kind": "int", ...}})).
        self.keys = {
            k: MetadataField.from_dict(v) if isinstance(v, dict) else v for k, v in self.keys.items()
        }
        self.validate()


@dataclass
class StructuredVocabConfig(Config):
    """Sizes of every structured token family (see the module docstring for the token list)."""

    num_sentinels: int = 32
    coord_bins: int = 64
    color_levels: int = 16
    max_palette_size: int = 8
    metadata: MetadataSpec = field(default_factory=MetadataSpec)

    def validate(self) -> None:
        if self.num_sentinels < 0:
            raise FourmError(f"num_sentinels must be >= 0, got {self.num_sentinels}")
        if self.coord_bins < 2:
            raise FourmError(f"coord_bins must be >= 2, got {self.coord_bins}")
        if not 2 <= self.color_levels <= 256:
            raise FourmError(f"color_levels must be in [2, 256], got {self.color_levels}")
        if self.max_palette_size < 1:
            raise FourmError(f"max_palette_size must be >= 1, got {self.max_palette_size}")
        self.metadata.validate()

    def __post_init__(self) -> None:
        self.validate()


def structured_tokens(config: StructuredVocabConfig) -> list[str]:
    """All special and structured tokens in id order ([PAD] first, so it gets id 0)."""
    tokens = list(SPECIAL_TOKENS)
    tokens += [sentinel_token(i) for i in range(config.num_sentinels)]
    tokens += [coord_token("x", i) for i in range(config.coord_bins)]
    tokens += [coord_token("y", i) for i in range(config.coord_bins)]
    tokens += [palette_size_token(k) for k in range(config.max_palette_size + 1)]
    tokens += [color_token(i) for i in range(config.color_levels)]
    tokens += [meta_key_token(k) for k in config.metadata.keys]
    tokens += [meta_value_token(i) for i in range(config.metadata.bins)]
    return tokens
