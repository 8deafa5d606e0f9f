"""Modality registry: what each modality is, how it is tokenized and how many tokens it gets.

One YAML file per modality lives in ``configs/modalities/<name>.yaml``::

    name: rgb
    kind: image            # image | sequence | vector
    tokenizer: tokenizers/rgb
    vocab_size: 1024
    num_tokens: 64         # image/vector: tokens per sample; sequences use max_length
    channels: 3
    image_size: 64

A *patch modality* (``patch_size`` set, e.g. ``configs/modalities/extra/rgb_pixels.yaml``) has no
tokenizer: its encoder input is the image cut into ``num_tokens`` pixel patches of ``patch_dim``
8-bit levels (:mod:`fourm.core.patches`); it is an input-only image with ``vocab_size`` 256.

A *continuous modality* (``value_dim`` set, e.g. ``configs/modalities/extra/caption_vector.yaml``)
has no tokenizer either: a ``vector`` of ``num_tokens`` float vectors of ``value_dim`` values, read
through a linear projection and predicted by a value head (:mod:`fourm.model.continuous`:
``value_head`` linear or diffusion, ``value_loss`` cosine or mse); ``vocab_size`` is 1.

A vector modality whose tokens lie on a row-major grid (``position_grid: [5, 8, 8]``, product =
``num_tokens``, e.g. ``configs/modalities/extra/video.yaml``) gets N-D sin-cos positions over it
instead of 1D ones (:func:`fourm.model.pos_embed.sincos_table_nd`).

Usage::

    registry = default_registry()          # the repo's configs/modalities/
    registry["rgb"].vocab_size              # 1024
    [m.name for m in registry.image_modalities()]

Iteration order is stable: the raw-sample schema order (rgb, depth, semseg, normals, edges, caption,
bboxes, metadata, color_palette), then other modalities alphabetically. Models index modalities by it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fourm.core.patches import LEVELS
from fourm.core.schema import ALL_KEYS
from fourm.errors import FourmError
from fourm.resources import CONFIG_ROOT
from fourm.utils.config import Config, read_mapping

CONFIG_DIR = CONFIG_ROOT / "modalities"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class ModalitySpec(Config):
    """One modality: its kind, tokenizer, vocabulary and token budget, plus data-layer facts."""

    name: str
    kind: Literal["image", "sequence", "vector"]
    vocab_size: int
    tokenizer: str | None = None  # path or zoo name; None until trained
    num_tokens: int | None = None  # image/vector: tokens per sample
    max_length: int | None = None  # sequence: maximum number of tokens
    input: bool = True  # may be given to the encoder
    target: bool = True  # may be predicted by the decoder
    data_key: str | None = None  # raw-sample key; defaults to name
    channels: int | None = None
    value_range: tuple[float, float] | None = None  # [lo, hi] of raw values
    num_classes: int | None = None
    image_size: int | None = None
    patch_size: int | None = None  # patch modality: side of a pixel patch (no tokenizer, input only)
    box_labels: list[str] | None = None  # box map: labels of data_key's boxes on the token grid (input only)
    token_level: Literal["top", "bottom"] | None = None  # grid of a two-level (vqvae2) tokenizer's tokens
    value_dim: int | None = None  # continuous modality: float values per token (no tokenizer, fourm.model.continuous)
    value_head: Literal["linear", "diffusion"] | None = None  # continuous target's head (default linear)
    value_loss: Literal["cosine", "mse"] | None = None  # linear head's loss (default cosine)
    value_scale: float | None = None  # diffusion head: x0 = value * value_scale (default 1)
    position_grid: tuple[int, ...] | None = None  # vector: row-major token grid for N-D sin-cos positions

    def __post_init__(self) -> None:
        if self.data_key is None:
            self.data_key = self.name

    def _fail(self, message: str) -> FourmError:
        return FourmError(f"modality '{self.name}': {message}")

    def validate(self) -> None:
        if not _NAME_RE.match(self.name):
            raise self._fail("field 'name' must be lower-case letters, digits and '_', starting with a letter")
        if self.vocab_size <= 0:
            raise self._fail(f"field 'vocab_size' must be > 0, got {self.vocab_size}")
        if not (self.input or self.target):
            raise self._fail("fields 'input' and 'target' are both false (it would never be used)")
        if self.kind in ("image", "vector"):
            if self.num_tokens is None:
                raise self._fail(f"field 'num_tokens' is required for kind '{self.kind}'")
            if self.max_length is not None:
                raise self._fail(f"field 'max_length' does not apply to kind '{self.kind}' (use num_tokens)")
        else:
            if self.max_length is None:
                raise self._fail("field 'max_length' is required for kind 'sequence'")
            if self.num_tokens is not None:
                raise self._fail("field 'num_tokens' does not apply to kind 'sequence' (use max_length)")
        for field in ("num_tokens", "max_length", "channels", "num_classes", "image_size", "patch_size"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise self._fail(f"field '{field}' must be > 0, got {value}")
        if self.kind == "image" and math.isqrt(self.num_tokens) ** 2 != self.num_tokens:
            raise self._fail(f"field 'num_tokens' must be a square number for kind 'image', got {self.num_tokens}")
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise self._fail(f"field 'value_range' must be [lo, hi] with lo < hi, got {list(self.value_range)}")
        if not self.data_key:
            raise self._fail("field 'data_key' must not be empty")
        if self.patch_size is not None:
            self._validate_patches()
        if self.box_labels is not None:
            self._validate_box_map()
        if self.token_level is not None and (self.kind != "image" or self.patch_size or self.box_labels):
            raise self._fail("field 'token_level' needs kind 'image' with a (vqvae2) tokenizer")
        if self.value_dim is not None:
            self._validate_continuous()
        elif any(getattr(self, f) is not None for f in ("value_head", "value_loss", "value_scale")):
            raise self._fail("fields 'value_head', 'value_loss', 'value_scale' need 'value_dim' (a continuous modality)")
        if self.position_grid is not None:
            self._validate_position_grid()

    def _validate_position_grid(self) -> None:
        """The rules of a ``position_grid``: a vector's row-major grid of ``num_tokens`` tokens."""
        grid = list(self.position_grid)
        if self.kind != "vector":
            raise self._fail(f"field 'position_grid' needs kind 'vector', got '{self.kind}'")
        if not grid or any(n <= 0 for n in grid):
            raise self._fail(f"field 'position_grid' must be a non-empty list of integers >= 1, got {grid}")
        if math.prod(grid) != self.num_tokens:
            cells, tokens = math.prod(grid), self.num_tokens
            raise self._fail(f"field 'position_grid' {grid} has {cells} cells, expected num_tokens {tokens}")

    def to_dict(self) -> dict:
        """The fields as JSON values; ``position_grid`` only when set, so an entry without one (and the
        fingerprints of token datasets and bundles made from it) stays as it was before the field."""
        data = super().to_dict()
        if self.position_grid is None:
            del data["position_grid"]
        return data

    def _validate_continuous(self) -> None:
        """The rules of a continuous modality (``value_dim`` set, :mod:`fourm.model.continuous`)."""
        if self.value_dim <= 0:
            raise self._fail(f"field 'value_dim' must be > 0, got {self.value_dim}")
        if self.kind != "vector":
            raise self._fail(f"field 'value_dim' needs kind 'vector', got '{self.kind}'")
        if self.tokenizer is not None:
            raise self._fail("field 'tokenizer' must be unset for a continuous modality (value_dim given)")
        if self.patch_size is not None or self.box_labels is not None:
            raise self._fail("field 'value_dim' excludes 'patch_size' and 'box_labels'")
        if self.vocab_size != 1:
            raise self._fail(f"field 'vocab_size' must be 1 for a continuous modality (token ids are 0), got {self.vocab_size}")
        if self.value_scale is not None and not 0 < self.value_scale <= 1e4:
            raise self._fail(f"field 'value_scale' must be in (0, 1e4], got {self.value_scale}")

    def _validate_patches(self) -> None:
        """The rules of a patch modality (``patch_size`` set)."""
        p = self.patch_size
        if self.kind != "image":
            raise self._fail(f"field 'patch_size' needs kind 'image', got '{self.kind}'")
        if self.target:  # and so input is true (both false is refused above)
            raise self._fail("field 'target' must be false for a patch modality (patch_size given; input only)")
        if self.tokenizer is not None:
            raise self._fail("field 'tokenizer' must be unset for a patch modality (patch_size given)")
        for field in ("channels", "image_size"):
            if getattr(self, field) is None:
                raise self._fail(f"field '{field}' is required for a patch modality (patch_size given)")
        if self.image_size % p:
            raise self._fail(f"field 'image_size' ({self.image_size}) must be a multiple of patch_size {p}")
        if self.num_tokens != (self.image_size // p) ** 2:
            raise self._fail(
                f"field 'num_tokens' must be (image_size / patch_size) ** 2 = {(self.image_size // p) ** 2}, "
                f"got {self.num_tokens}"
            )
        if self.vocab_size != LEVELS:
            raise self._fail(
                f"field 'vocab_size' must be {LEVELS} for a patch modality (8-bit levels), got {self.vocab_size}"
            )

    def _validate_box_map(self) -> None:
        """The rules of a box-map modality (``box_labels`` set, :mod:`fourm.codecs.box_map`)."""
        if self.kind != "image":
            raise self._fail(f"field 'box_labels' needs kind 'image', got '{self.kind}'")
        if self.patch_size is not None:
            raise self._fail("fields 'box_labels' and 'patch_size' exclude each other")
        if self.target:
            raise self._fail("field 'target' must be false for a box map (box_labels given; input only)")
        if self.tokenizer is not None:
            raise self._fail("field 'tokenizer' must be unset for a box map (box_labels given)")
        if not self.box_labels or any(not str(label).split() for label in self.box_labels):
            raise self._fail("field 'box_labels' must be a non-empty list of non-empty labels")
        if self.vocab_size != len(self.box_labels) + 2:
            raise self._fail(
                f"field 'vocab_size' must be len(box_labels) + 2 = {len(self.box_labels) + 2} for a box map "
                f"(0 = no box, one per label, one for other labels), got {self.vocab_size}"
            )

    @property
    def needs_tokenizer(self) -> bool:
        """False for modalities whose tokens are computed without a tokenizer (patches, box maps)."""
        return self.patch_size is None and self.box_labels is None and self.value_dim is None

    @property
    def length(self) -> int:
        """Token budget of one sample: ``num_tokens`` (image/vector) or ``max_length`` (sequence)."""
        return self.num_tokens if self.num_tokens is not None else self.max_length  # type: ignore[return-value]

    @property
    def patch_dim(self) -> int | None:
        """Values per pixel patch (``channels * patch_size ** 2``); None unless a patch modality."""
        if self.patch_size is None:
            return None
        return self.channels * self.patch_size**2  # type: ignore[operator]

    @property
    def grid_size(self) -> int:
        """Side of the token grid of an image modality (sqrt of ``num_tokens``)."""
        if self.kind != "image":
            raise FourmError(f"modality '{self.name}' is a {self.kind}, it has no token grid")
        return math.isqrt(self.num_tokens)  # type: ignore[arg-type]


def _order_key(name: str) -> tuple[int, str]:
    return (ALL_KEYS.index(name), "") if name in ALL_KEYS else (len(ALL_KEYS), name)


class ModalityRegistry:
    """An ordered, read-mostly mapping ``name -> ModalitySpec`` (schema order, then alphabetical)."""

    def __init__(self, specs: Iterable[ModalitySpec] = ()) -> None:
        self._specs: dict[str, ModalitySpec] = {}
        for spec in specs:
            self.add(spec)

    # -- construction -------------------------------------------------------------------------
    def add(self, spec: ModalitySpec) -> None:
        """Add a modality (FourmError if the name is taken); keeps the stable order."""
        if not isinstance(spec, ModalitySpec):
            raise FourmError(f"expected a ModalitySpec, got {type(spec).__name__}")
        if spec.name in self._specs:
            raise FourmError(f"duplicate modality '{spec.name}' (field 'name' must be unique)")
        self._specs[spec.name] = spec
        self._specs = {n: self._specs[n] for n in sorted(self._specs, key=_order_key)}

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> ModalityRegistry:
        """Load one modality per YAML/JSON file; the file name must be ``<name>.yaml``."""
        registry = cls()
        for path in paths:
            path = Path(path)
            data = read_mapping(path)
            data.setdefault("name", path.stem)
            if data["name"] != path.stem:
                raise FourmError(
                    f"{path}: field 'name' is {data['name']!r} but the file is named '{path.name}' "
                    f"(expected '{data['name']}{path.suffix}')"
                )
            try:
                registry.add(ModalitySpec.from_dict(data))
            except FourmError as e:
                raise FourmError(f"{path}: {e}") from None
        return registry

    @classmethod
    def from_dir(cls, path: str | Path) -> ModalityRegistry:
        """Load every ``*.yaml`` / ``*.yml`` file of a directory (one modality each)."""
        path = Path(path)
        if not path.is_dir():
            raise FourmError(f"modality config directory not found: {path}")
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))
        if not files:
            raise FourmError(f"no modality files (*.yaml) in {path}")
        return cls.from_files(files)

    @classmethod
    def from_dict(cls, data: dict[str, dict]) -> ModalityRegistry:
        """Inverse of :meth:`to_dict`."""
        specs = []
        for name, spec in data.items():
            if not isinstance(spec, dict):
                raise FourmError(f"modality '{name}': expected a mapping, got {type(spec).__name__}")
            specs.append(ModalitySpec.from_dict({"name": name, **spec}))
        return cls(specs)

    def to_dict(self) -> dict[str, dict]:
        return {name: spec.to_dict() for name, spec in self._specs.items()}

    def subset(self, names: Iterable[str]) -> ModalityRegistry:
        """A registry holding only ``names`` (each must exist)."""
        return ModalityRegistry(self[n] for n in names)

    # -- mapping interface --------------------------------------------------------------------
    def __getitem__(self, name: str) -> ModalitySpec:
        try:
            return self._specs[name]
        except KeyError:
            raise FourmError(f"unknown modality '{name}' (known: {', '.join(self._specs) or 'none'})") from None

    def get(self, name: str, default: ModalitySpec | None = None) -> ModalitySpec | None:
        return self._specs.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"ModalityRegistry({', '.join(self._specs)})"

    @property
    def names(self) -> list[str]:
        return list(self._specs)

    def index(self, name: str) -> int:
        """Position of ``name`` in the stable order (the model's modality index)."""
        self[name]
        return self.names.index(name)

    def values(self) -> list[ModalitySpec]:
        return list(self._specs.values())

    def items(self) -> list[tuple[str, ModalitySpec]]:
        return list(self._specs.items())

    def image_modalities(self) -> list[ModalitySpec]:
        return [s for s in self._specs.values() if s.kind == "image"]

    def sequence_modalities(self) -> list[ModalitySpec]:
        return [s for s in self._specs.values() if s.kind == "sequence"]

    def vector_modalities(self) -> list[ModalitySpec]:
        return [s for s in self._specs.values() if s.kind == "vector"]

    def inputs(self) -> list[ModalitySpec]:
        """Modalities that may be given to the encoder."""
        return [s for s in self._specs.values() if s.input]

    def targets(self) -> list[ModalitySpec]:
        """Modalities that may be predicted by the decoder."""
        return [s for s in self._specs.values() if s.target]


def default_registry() -> ModalityRegistry:
    """The modalities shipped in the repo's ``configs/modalities/``."""
    return ModalityRegistry.from_dir(CONFIG_DIR)


def shipped_modality_names() -> list[str]:
    """Names of every modality YAML shipped in the repo: the default registry, then
    ``configs/modalities/extra/`` (modalities added by fine-tuning, e.g. caption_embedding, rgb_pixels)."""
    extra = CONFIG_DIR / "extra"
    stems = sorted(p.stem for p in extra.iterdir() if p.suffix in (".yaml", ".yml")) if extra.is_dir() else []
    names = default_registry().names
    return names + [s for s in stems if s not in names]
