"""FourM model configuration: architecture fields, the modalities it reads and predicts, presets.

Usage::

    cfg = FourMConfig.preset("tiny", {"rgb": ModalityConfig("image", 1024, 64),
                                      "caption": ModalityConfig("sequence", 4096, 48)})
    cfg = FourMConfig.from_registry(default_registry(), "tiny")
    cfg = FourMConfig.load("configs/models/small.yaml", modalities)   # YAML with architecture only
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from fourm.errors import FourmError
from fourm.resources import CONFIG_ROOT
from fourm.utils.config import Config, read_mapping

PatchStemKind = Literal["linear", "conv", "conv_image"]


def patch_side(patch_dim: int, channels: int) -> int:
    """Side p of a square patch of ``patch_dim = p * p * channels`` values (FourmError if none)."""
    side = math.isqrt(patch_dim // channels) if channels > 0 and patch_dim % channels == 0 else 0
    if side < 2 or side * side * channels != patch_dim:
        raise FourmError(
            f"a conv patch stem needs square patches of {channels} channels (p x p x {channels} values, p >= 2); "
            f"got {patch_dim} values"
        )
    return side

ModalityKind = Literal["image", "sequence", "vector"]
# the diffusion value head's parameterisation (fourm.model.diffusion_head; diffusers' names): what its
# MLP predicts, and its noise schedule (cosine, or cosine rescaled to zero terminal SNR, Lin et al. 2024)
ValuePrediction = Literal["v_prediction", "epsilon"]
ValueSchedule = Literal["cosine_zero_snr", "cosine"]
# what a saved config (config.json) without these fields meant: the diffusion head's first version
SAVED_BEFORE_PARAMETERISATION = {"value_prediction": "epsilon", "value_schedule": "cosine"}


@dataclass
class ModalityConfig(Config):
    """One modality as the model sees it.

    kind: "image" (square grid of ``length`` tokens, 2D positions, decoded in parallel),
    "sequence" (up to ``length`` tokens, 1D positions, decoded causally) or "vector" (``length``
    tokens, 1D positions or N-D ones over its ``position_grid``, decoded in parallel). ``input`` /
    ``target``: may be given to the encoder / predicted by the decoder (a target gets an output head).
    ``patch_dim`` > 0: a patch modality (:mod:`fourm.core.patches`), input only, whose encoder tokens
    are ``length`` pixel patches of ``patch_dim`` 8-bit values, embedded by the model's patch stem
    (``FourMConfig.patch_stem``) instead of a token table (``vocab_size`` is then the 256 levels of a value).
    """

    kind: ModalityKind
    vocab_size: int
    length: int
    input: bool = True
    target: bool = True
    patch_dim: int = 0
    # "sincos": fixed sin-cos table (2D for images, 1D otherwise); "learned": one learned table per
    # side (encoder, decoder) of ``num_positions`` rows (ml-4m's global-feature token modalities)
    positions: Literal["sincos", "learned"] = "sincos"
    # continuous modality (value_dim > 0, kind vector; fourm.model.continuous): each token is
    # value_dim floats, read through a linear projection and predicted by a head (Emu-style
    # regression, or a small diffusion head as in MAR / Transfusion) instead of a softmax
    value_dim: int = 0
    value_head: Literal["linear", "diffusion"] = "linear"
    value_loss: Literal["cosine", "mse"] = "cosine"  # linear head's loss (diffusion: MSE to its prediction)
    value_scale: float = 1.0  # diffusion head: x0 = value * value_scale (unit-norm 384-d: ~sqrt(384))
    # diffusion head: v-prediction on the zero-terminal-SNR cosine schedule samples from pure noise without
    # DDIM's ~2e4 amplification of the epsilon error at t = T; a saved config without these fields loads
    # as epsilon / cosine, the head it was trained as (FourMConfig.from_file)
    value_prediction: ValuePrediction = "v_prediction"
    value_schedule: ValueSchedule = "cosine_zero_snr"
    # vector modality laid out on a row-major grid (e.g. (8, 8) patches, video's (5, 8, 8) groups x rows x
    # columns; product = length): N-D sin-cos positions (fourm.model.pos_embed.sincos_table_nd) instead of
    # 1D ones; None (a saved config without the field too) = 1D
    position_grid: tuple[int, ...] | None = None

    @property
    def causal(self) -> bool:
        """Sequences are decoded left to right; image and vector tokens in parallel."""
        return self.kind == "sequence"

    @property
    def num_positions(self) -> int:
        """Rows of this modality's position table. Sequences get one more than ``length``: a
        span-masked decoder side (sentinels, spans, [EOS]) can be one token longer than the sequence."""
        return self.length + 1 if self.kind == "sequence" else self.length

    @property
    def grid_size(self) -> int:
        """Side of the square token grid (image modalities)."""
        return math.isqrt(self.length)

    def check(self, name: str) -> None:
        """Raise FourmError naming ``name`` if a field is out of range."""
        if self.vocab_size <= 0:
            raise FourmError(f"modality '{name}': vocab_size must be > 0, got {self.vocab_size}")
        if self.length <= 0:
            raise FourmError(f"modality '{name}': length must be > 0, got {self.length}")
        if self.kind == "image" and math.isqrt(self.length) ** 2 != self.length:
            raise FourmError(f"modality '{name}': image length must be a square number, got {self.length}")
        if not (self.input or self.target):
            raise FourmError(f"modality '{name}': input and target are both false (it would never be used)")
        if self.value_dim < 0:
            raise FourmError(f"modality '{name}': value_dim must be >= 0, got {self.value_dim}")
        if self.patch_dim < 0:
            raise FourmError(f"modality '{name}': patch_dim must be >= 0, got {self.patch_dim}")
        if self.patch_dim and (self.kind != "image" or self.target or not self.input):
            raise FourmError(f"modality '{name}': a patch modality (patch_dim > 0) must be an input-only image")
        if self.positions not in ("sincos", "learned"):
            raise FourmError(f"modality '{name}': positions must be sincos or learned, got {self.positions!r}")
        if self.value_dim:
            self._check_continuous(name)
        if self.position_grid is not None:
            self._check_position_grid(name)

    def _check_position_grid(self, name: str) -> None:
        """The rules of a ``position_grid``: a vector modality's row-major grid of ``length`` tokens."""
        grid = self.position_grid
        is_list = isinstance(grid, (list, tuple))
        where = f"modality '{name}': position_grid {list(grid) if is_list else repr(grid)}"
        if not is_list or not grid or not all(type(n) is int and n >= 1 for n in grid):  # no bools
            raise FourmError(f"{where} must be a non-empty list of integers >= 1")
        if self.kind != "vector":
            why = "an image has its square grid, a sequence 1D positions"
            raise FourmError(f"{where} needs kind vector, got {self.kind} ({why})")
        if self.learned_positions:
            raise FourmError(f"{where} needs positions: sincos, got {self.positions}")
        if math.prod(grid) != self.length:
            raise FourmError(f"{where} has {math.prod(grid)} cells, expected length {self.length}")

    def _check_continuous(self, name: str) -> None:
        """The rules of a continuous modality (``value_dim`` > 0)."""
        where = f"modality '{name}': a continuous modality (value_dim {self.value_dim})"
        if self.kind != "vector":
            raise FourmError(f"{where} must have kind vector, got {self.kind}")
        if self.patch_dim:
            raise FourmError(f"{where} cannot also be a patch modality (patch_dim {self.patch_dim})")
        if self.vocab_size != 1:
            raise FourmError(f"{where} has no vocabulary: vocab_size must be 1 (its token ids are 0), got {self.vocab_size}")
        if self.value_head not in ("linear", "diffusion"):
            raise FourmError(f"{where}: value_head must be linear or diffusion, got {self.value_head!r}")
        if self.value_loss not in ("cosine", "mse"):
            raise FourmError(f"{where}: value_loss must be cosine or mse, got {self.value_loss!r}")
        if not 0.0 < self.value_scale <= 1e4:
            raise FourmError(f"{where}: value_scale must be in (0, 1e4], got {self.value_scale}")
        for key, tp in (("value_prediction", ValuePrediction), ("value_schedule", ValueSchedule)):
            if getattr(self, key) not in get_args(tp):
                known = ", ".join(get_args(tp))
                raise FourmError(f"{where}: {key} must be one of {known}, got {getattr(self, key)!r}")

    @property
    def learned_positions(self) -> bool:
        return self.positions == "learned"

    @property
    def is_patches(self) -> bool:
        """Encoder input is pixel patches (embedded linearly), not token ids."""
        return self.patch_dim > 0

    @property
    def is_continuous(self) -> bool:
        """Tokens are float vectors of ``value_dim`` values (fourm.model.continuous), not ids."""
        return self.value_dim > 0

    @property
    def table_rows(self) -> int:
        """Rows of the shared token table: the vocabulary, none for a patch or continuous modality."""
        return 0 if self.patch_dim or self.value_dim else self.vocab_size


def _load_presets() -> dict[str, dict[str, Any]]:
    """name -> architecture fields, from the shipped ``configs/models/<name>.yaml`` (the one home of
    the model sizes: 4M's Tiny, Small, Base, Large)."""
    return {path.stem: read_mapping(path) for path in sorted((CONFIG_ROOT / "models").glob("*.yaml"))}


PRESETS: dict[str, dict[str, Any]] = _load_presets()


@dataclass
class FourMConfig(Config):
    """Architecture of a FourM encoder-decoder and its modalities (order = modality index)."""

    dim: int = 384
    enc_depth: int = 6
    dec_depth: int = 6
    num_heads: int = 6
    mlp_ratio: float = 8 / 3  # SwiGLU hidden = mlp_ratio * dim, rounded to a multiple of 64
    qk_norm: bool = False  # normalise queries and keys per head (stabilises large models)
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-6
    tie_embeddings: bool = False  # output head of a modality = its input token embedding
    share_encoder_decoder_embeddings: bool = False  # sequences: decoder reuses encoder token table
    dropout: float = 0.0
    init_std: float = 0.02  # std of embeddings and untied output heads
    # std of the token tables (encoder tokens, sequences' decoder inputs; a tied head's rows) at init; None:
    # init_std. Rows far smaller than the position rows stay unread: a word whose meaning depends on the
    # position (a caption's "left of") is never learnt (issue 16, round 21: docs/experiments/default_model.md).
    # A tied head reads its rows x init_std / token_init_std (FourM.tied_head_scale): its logits start small
    token_init_std: float | None = None
    # SwiGLU hidden width; 0 = derived from mlp_ratio (ml-4m: int(2 * int(mlp_ratio * dim) / 3))
    mlp_hidden_dim: int = 0
    # encoder and decoder read one modality-embedding table (ml-4m's share_modality_embeddings)
    share_modality_embeddings: bool = False
    # decoder context = Linear(dim, dim, bias)(encoder output) + the encoder tokens' position and
    # modality embeddings, instead of the encoder output itself (ml-4m's decoder_proj_context)
    context_projection: bool = False
    # each decoder block normalises the context before its cross-attention keys/values (ml-4m)
    context_norm: bool = False
    # multiplies the fixed sin-cos position table (per-feature rms sqrt(1/2), row norm sqrt(dim/2)) and
    # the init scale of pixel-patch projections; token rows start at init_std (issue 16: A/B in docs/experiments/default_model.md)
    position_scale: float = 1.0
    # image modalities' sin-cos positions in one frame of image_frame x image_frame cells (a G x G grid's
    # token centre at (i + 0.5) * image_frame / G - 0.5), so grids of different sizes over the same image
    # share positions; None: each grid at integer positions (the same when every image has one grid size)
    image_frame: int | None = None
    # embedding of pixel-patch modalities (fourm.model.patch_stem): 4M's "linear" projection, "conv" (two 3x3
    # convolutions inside each patch of patch_channels channels, width patch_stem_width, first), or "conv_image"
    # (a small CNN over the whole image of the given patches, down to the patch grid: sees across patches)
    patch_stem: PatchStemKind = "linear"
    patch_stem_width: int = 32
    patch_channels: int = 3
    modalities: dict[str, ModalityConfig] = field(default_factory=dict)

    def validate(self) -> None:
        for name in ("dim", "enc_depth", "dec_depth", "num_heads"):
            if getattr(self, name) <= 0:
                raise FourmError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise FourmError(f"dim {self.dim} must be divisible by num_heads {self.num_heads}")
        if self.dim % 4:
            raise FourmError(f"dim must be divisible by 4 (2D sin-cos positions), got {self.dim}")
        if self.mlp_ratio <= 0:
            raise FourmError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.mlp_hidden_dim < 0:
            raise FourmError(f"mlp_hidden_dim must be >= 0 (0: from mlp_ratio), got {self.mlp_hidden_dim}")
        if not 0.0 < self.position_scale <= 10.0:
            raise FourmError(f"position_scale must be in (0, 10], got {self.position_scale}")
        if self.token_init_std is not None and not 0.0 < self.token_init_std <= 10.0:
            raise FourmError(f"token_init_std must be in (0, 10] or null, got {self.token_init_std}")
        if self.image_frame is not None and (isinstance(self.image_frame, bool) or not isinstance(self.image_frame, int) or self.image_frame < 1):
            raise FourmError(f"image_frame must be an integer >= 1 or null, got {self.image_frame!r}")
        if self.patch_stem not in get_args(PatchStemKind):
            raise FourmError(f"patch_stem must be one of {', '.join(get_args(PatchStemKind))}, got {self.patch_stem!r}")
        if self.patch_stem != "linear":
            if self.patch_stem_width < 1:
                raise FourmError(f"patch_stem_width must be >= 1, got {self.patch_stem_width}")
            for name, mod in self.modalities.items():
                if mod.is_patches:
                    try:
                        side = patch_side(mod.patch_dim, self.patch_channels)
                    except FourmError as e:
                        raise FourmError(f"modality '{name}': {e} (patch_channels {self.patch_channels})") from None
                    if self.patch_stem == "conv_image" and side & (side - 1):
                        raise FourmError(f"modality '{name}': a conv_image patch stem needs a patch side that is a power of 2, got {side}")
        if not 0.0 <= self.dropout < 1.0:
            raise FourmError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.modalities:
            raise FourmError("modalities is empty (expected at least one modality)")
        for name, mod in self.modalities.items():
            if not name:
                raise FourmError("modality names must not be empty")
            mod.check(name)
        if not any(m.target for m in self.modalities.values()):
            raise FourmError("no modality has target: true (the decoder would have nothing to predict)")

    @property
    def modality_names(self) -> list[str]:
        """Modality order: the index of a name is its modality index in packed batches."""
        return list(self.modalities)

    @property
    def patch_width(self) -> int:
        """Width P of ``enc_patches`` rows: the largest patch_dim (0 without patch modalities)."""
        return max((m.patch_dim for m in self.modalities.values()), default=0)

    @property
    def value_width(self) -> int:
        """Width C of ``enc_values`` / ``dec_values`` rows: the largest value_dim (0 without continuous modalities)."""
        return max((m.value_dim for m in self.modalities.values()), default=0)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        """SwiGLU hidden width: ``mlp_hidden_dim`` if set, else mlp_ratio * dim rounded to the
        nearest multiple of 64 (>= 64)."""
        if self.mlp_hidden_dim:
            return self.mlp_hidden_dim
        return max(64, 64 * round(self.mlp_ratio * self.dim / 64))

    def modality_index(self, name: str) -> int:
        """Index of modality ``name`` (FourmError if unknown)."""
        if name not in self.modalities:
            raise FourmError(f"unknown modality '{name}' (known: {', '.join(self.modalities)})")
        return self.modality_names.index(name)

    @classmethod
    def preset(
        cls, name: str, modalities: Mapping[str, ModalityConfig | dict], **overrides: Any
    ) -> FourMConfig:
        """A named size (tiny, small, base, large) for ``modalities``; ``overrides`` change fields."""
        if name not in PRESETS:
            raise FourmError(f"unknown model preset '{name}' (known: {', '.join(PRESETS)})")
        return cls.from_dict({**PRESETS[name], **overrides, "modalities": dict(modalities)})

    @classmethod
    def from_registry(cls, registry: Any, preset: str = "tiny", **overrides: Any) -> FourMConfig:
        """Modalities from a registry (mapping name -> spec, or iterable of specs, with ``.name,
        .kind, .vocab_size, .num_tokens, .max_length, .input, .target``), architecture from ``preset``."""
        specs = registry.values() if hasattr(registry, "values") else registry
        return cls.preset(preset, {spec.name: modality_from_spec(spec) for spec in specs}, **overrides)

    @classmethod
    def from_file(cls, path: str | Path) -> FourMConfig:
        """A config read from disk (a saved ``config.json``): a diffusion value head whose entry
        predates ``value_prediction`` / ``value_schedule`` loads as it was trained (epsilon, cosine;
        :func:`with_saved_defaults`), not as the new default."""
        try:
            return cls.from_dict(with_saved_defaults(read_mapping(path)))
        except FourmError as e:
            raise FourmError(f"{path}: {e}") from None

    from_yaml = from_file
    from_json = from_file

    @classmethod
    def load(cls, source: str | Path, modalities: Mapping[str, ModalityConfig | dict] | None = None) -> FourMConfig:
        """A preset name or a YAML/JSON file; ``modalities`` fill in (or replace) the file's (the
        file's own are read as saved ones, :func:`with_saved_defaults`)."""
        if isinstance(source, str) and source in PRESETS:
            if modalities is None:
                raise FourmError(f"preset '{source}' needs modalities")
            return cls.preset(source, modalities)
        data = read_mapping(source)
        if modalities is not None:
            data["modalities"] = dict(modalities)
        else:
            data = with_saved_defaults(data)
        try:
            return cls.from_dict(data)
        except FourmError as e:
            raise FourmError(f"{source}: {e}") from None


def with_saved_defaults(data: dict) -> dict:
    """A FourMConfig mapping read from disk, with :data:`SAVED_BEFORE_PARAMETERISATION` filled into
    each diffusion-head modality that lacks those fields (configs saved before they existed); a
    config built in code or for training gets the dataclass defaults instead, and records them."""
    modalities = data.get("modalities")
    if not isinstance(modalities, dict):
        return data
    filled = {
        name: {**SAVED_BEFORE_PARAMETERISATION, **mod}
        if isinstance(mod, dict) and mod.get("value_head") == "diffusion" else mod
        for name, mod in modalities.items()
    }
    return {**data, "modalities": filled}


def modality_from_spec(spec: Any) -> ModalityConfig:
    """ModalityConfig from a registry spec (``.kind, .vocab_size, .num_tokens / .max_length``)."""
    kind = getattr(spec, "kind", None)
    if kind not in ("image", "sequence", "vector"):
        raise FourmError(f"modality '{spec.name}': unknown kind {kind!r} (expected image, sequence or vector)")
    length = getattr(spec, "max_length", None) if kind == "sequence" else getattr(spec, "num_tokens", None)
    if length is None:
        field_name = "max_length" if kind == "sequence" else "num_tokens"
        raise FourmError(f"modality '{spec.name}': {field_name} is not set (needed for kind '{kind}')")
    cfg = ModalityConfig(
        kind=kind,
        vocab_size=int(spec.vocab_size),
        length=int(length),
        input=bool(getattr(spec, "input", True)),
        target=bool(getattr(spec, "target", True)),
        patch_dim=int(getattr(spec, "patch_dim", None) or 0),
        value_dim=int(getattr(spec, "value_dim", None) or 0),
    )
    if getattr(spec, "position_grid", None) is not None:
        cfg.position_grid = tuple(spec.position_grid)
    for key in ("value_head", "value_loss", "value_scale", "value_prediction", "value_schedule"):
        if getattr(spec, key, None) is not None:
            setattr(cfg, key, getattr(spec, key))
    cfg.check(spec.name)
    return cfg
