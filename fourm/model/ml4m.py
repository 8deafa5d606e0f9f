"""Read the released FM checkpoints of apple/ml-4m (``EPFL-VILAB/4M-7_*``, ``4M-21_*``) as a FourM
config and state dict.

An ml-4m model directory holds ``config.json`` (the keyword arguments of ml-4m's ``FM`` class:
``domains_in`` / ``domains_out``, ``dim``, ``encoder_depth``, ...) and ``model.safetensors`` (its
state dict: ``encoder_embeddings.<modality>.*``, ``encoder.<i>.*``, ``decoder_proj_context``,
``decoder.<i>.*``, ``decoder_embeddings.<modality>.*``, ...). :func:`ml4m_to_fourm` maps both onto the
config and weights of a :class:`~fourm.model.FourM` with the ml-4m options switched on (SwiGLU width
``int(2 * int(ratio * dim) / 3)``, projected decoder context plus per-block context norm, shared
modality embeddings when the checkpoint shares them, learned position tables where the checkpoint has
them); :func:`read_ml4m` does it for a directory. The resulting model computes what the ml-4m model
computes; docs/ml4m.md lists the differences that remain in how inputs are prepared.

This is the model layer's part of the conversion: :meth:`FourM.from_pretrained` reads an ml-4m
directory with it, :mod:`fourm.convert.ml4m` builds on it (``load_ml4m``, whole bundles with their
tokenizers), as do the tokenizer converters (:mod:`fourm.convert.ml4m_vqvae`,
:mod:`fourm.convert.ml4m_divae`: :func:`resolve_source`, :class:`_Weights`, ...).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.model.config import FourMConfig, ModalityConfig
from fourm.model.files import CONFIG_NAME, WEIGHTS_NAME
from fourm.model.files import is_ml4m_config as _is_ml4m_config
from fourm.model.pos_embed import sincos_table_1d, sincos_table_2d
from fourm.utils.weights import load_state_checked, read_safetensors

# config.json keys of ml-4m's FM and what fourm does with them
SUPPORTED_VALUES: dict[str, Any] = {  # keys whose value must be this one (else the computation differs)
    "qkv_bias": False,
    "proj_bias": False,
    "mlp_bias": False,
    "norm_bias": False,
    "act_layer": "SiLU",
    "gated_mlp": True,
    "decoder_causal_mask": False,
    "decoder_sep_mask": True,
    "num_register_tokens": 0,
}
REQUIRED_KEYS = ("domains_in", "domains_out", "dim", "encoder_depth", "decoder_depth", "num_heads")
OTHER_KEYS = ("mlp_ratio", "qk_norm", "share_modality_embeddings", "image_size", "patch_size")
IGNORED_KEYS = (  # training-only settings, no effect on the forward pass in eval mode
    "drop_path_rate_encoder",
    "drop_path_rate_decoder",
    "shared_drop_path",
    "use_act_checkpoint",
)
KNOWN_KEYS = (*REQUIRED_KEYS, *OTHER_KEYS, *SUPPORTED_VALUES, *IGNORED_KEYS)

# ImageNet statistics ml-4m normalises RGB pixels with (before its bias-free patch projection)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Sequence modalities (WordPiece text of the 30k 4M vocabulary) and their max lengths, used only
# when a checkpoint lacks the (fixed) position buffer the length is otherwise read from.
SEQUENCE_LENGTHS = {"caption": 256, "det": 256, "metadata": 40, "human_poses": 263, "color_palette": 23, "sam_instance": 290}
# Modalities fourm cannot express: dropped (with a note) unless asked to keep them, which fails.
UNSUPPORTED = {"t5_caption": "T5-XXL embedding input (float vectors, not tokens)"}
# Token modalities whose grid differs from image_size / patch_size (feature maps with other patches)
IMAGE_PATCH_SIZES = {"tok_dinov2": 14, "tok_imagebind": 14, "tok_dinov2_global": 56, "tok_imagebind_global": 56}


@dataclass
class ModalityInfo:
    """One ml-4m modality as converted (the rows of ``ml4m_modalities.json``)."""

    kind: str  # "image" (image tokens), "sequence" (text tokens), "patches" (RGB pixel patches)
    vocab_size: int
    length: int  # image: tokens (or patches); sequence: max length
    input: bool
    target: bool
    positions: str = "sincos"
    patch_size: int = 0  # patches: side of a pixel patch
    channels: int = 0
    pixel_mean: list[float] = field(default_factory=list)  # patches: normalisation folded into the projection
    pixel_std: list[float] = field(default_factory=list)


@dataclass
class ConversionInfo:
    """What :func:`ml4m_to_fourm` built: the modality map and the modalities it dropped (name -> why)."""

    modalities: dict[str, ModalityInfo]
    dropped: dict[str, str]
    ignored_weights: list[str]
    tokenizers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> path (relative), kind, notes

    def to_dict(self) -> dict:
        return {
            "format": "ml-4m FM (apple/ml-4m, Apache-2.0)",
            "modalities": {k: vars(v) for k, v in self.modalities.items()},
            "dropped": self.dropped,
            "tokenizers": self.tokenizers,
        }


# ------------------------------------------------------------------------------ detection / reading
def is_ml4m_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory whose ``config.json`` is an ml-4m FM config (has ``domains_in``)."""
    return _is_ml4m_config(Path(path) / CONFIG_NAME)


def read_ml4m_config(path: str | Path) -> dict:
    """The config.json of ml-4m directory ``path``, checked: FourmError naming unknown keys,
    missing keys or values fourm cannot reproduce."""
    from fourm.utils.config import read_json_object

    file = Path(path) / CONFIG_NAME
    data = read_json_object(file, "ml-4m config")
    check_ml4m_config(data, str(file))
    return data


def check_ml4m_config(data: Mapping[str, Any], where: str = "ml-4m config") -> None:
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        raise FourmError(f"{where}: unknown ml-4m config key(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise FourmError(f"{where}: missing ml-4m config key(s) {', '.join(missing)}")
    for key, value in SUPPORTED_VALUES.items():
        if key in data and data[key] != value:
            raise FourmError(f"{where}: {key}={data[key]!r} is not supported (fourm reproduces {key}={value!r})")
    for key in ("domains_in", "domains_out"):
        if not isinstance(data[key], list) or not all(isinstance(m, str) for m in data[key]):
            raise FourmError(f"{where}: {key} must be a list of modality names, got {data[key]!r}")
    for key in ("dim", "encoder_depth", "decoder_depth", "num_heads"):
        if not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] <= 0:
            raise FourmError(f"{where}: {key} must be a positive integer, got {data[key]!r}")


def resolve_source(src: str | Path) -> Path:
    """A local ml-4m directory, or (online only) a Hugging Face hub id such as ``EPFL-VILAB/4M-7_B_CC12M``
    downloaded with huggingface_hub (optional dependency)."""
    path = Path(src).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FourmError(f"ml-4m source {src} is not a directory (expected config.json + model.safetensors)")
        return path
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", str(src)):
        raise FourmError(f"ml-4m source not found: {src} (expected a directory or a hub id like EPFL-VILAB/4M-7_B_CC12M)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FourmError(
            f"{src} is not a local directory, and downloading it needs huggingface_hub (pip install huggingface_hub)"
        ) from None
    try:
        return Path(snapshot_download(str(src), allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    except Exception as e:  # network, authentication, unknown repository: one line for the user
        raise FourmError(f"could not download {src}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


# ------------------------------------------------------------------------------ conversion
def _kind(name: str) -> str:
    base = name.split("@")[0]
    if name in UNSUPPORTED:
        return "unsupported"
    if base == "rgb" and "@" in name:
        return "patches"
    if base.startswith("tok_"):
        return "image"
    if base in SEQUENCE_LENGTHS:
        return "sequence"
    raise FourmError(
        f"unknown ml-4m modality '{name}' (known: rgb@<size>, tok_<name>[@<size>], {', '.join(SEQUENCE_LENGTHS)})"
    )


def _image_side(name: str, config: Mapping[str, Any]) -> int:
    _, _, size = name.partition("@")
    return int(size) if size.isdigit() else int(config.get("image_size", 224))


class _Weights:
    """The ml-4m state dict, with a record of the names used (all must be by the end)."""

    def __init__(self, tensors: Mapping[str, Tensor], where: str) -> None:
        self.tensors, self.where, self.used = dict(tensors), where, set()

    def has(self, key: str) -> bool:
        return key in self.tensors

    def get(self, key: str, shape: tuple[int, ...] | None = None) -> Tensor:
        if key not in self.tensors:
            raise FourmError(f"{self.where}: missing weight '{key}'")
        t = self.tensors[key]
        if shape is not None and tuple(t.shape) != shape:
            raise FourmError(f"{self.where}: weight '{key}' has shape {tuple(t.shape)}, expected {shape}")
        self.used.add(key)
        return t.float()

    def zero_bias(self, key: str, dim: int) -> None:
        """ml-4m's bias-free LayerNorm keeps a zero ``bias`` buffer: check it is zero, if stored."""
        if key in self.tensors:
            if bool(self.get(key, (dim,)).abs().max() > 0):
                raise FourmError(f"{self.where}: '{key}' is not zero (norm biases are not supported)")

    def ignore(self, prefix: str) -> list[str]:
        keys = [k for k in self.tensors if k.startswith(prefix)]
        self.used.update(keys)
        return keys

    def check_all_used(self) -> None:
        left = sorted(set(self.tensors) - self.used)
        if left:
            more = f" (+{len(left) - 5} more)" if len(left) > 5 else ""
            raise FourmError(f"{self.where}: unexpected weight(s) {', '.join(left[:5])}{more}")


def _positions(w: _Weights, key: str, kind: str, length: int | None, dim: int) -> tuple[int, Tensor | None]:
    """(length, learned table or None for sin-cos) from the stored ``pos_emb`` (1, L, D)."""
    if not w.has(key):
        if length is None:
            raise FourmError(f"{w.where}: missing weight '{key}' (needed for the length of a learned table)")
        return length, None
    table = w.tensors[key]
    if table.dim() != 3 or table.shape[0] != 1 or table.shape[2] != dim:
        raise FourmError(f"{w.where}: weight '{key}' has shape {tuple(table.shape)}, expected (1, L, {dim})")
    n = table.shape[1]
    table = w.get(key)[0]
    if kind == "image" and math.isqrt(n) ** 2 != n:
        raise FourmError(f"{w.where}: weight '{key}' has {n} rows, not a square grid")
    fixed = sincos_table_2d(math.isqrt(n), dim) if kind == "image" else sincos_table_1d(n, dim)
    return n, None if torch.allclose(table, fixed, atol=1e-4) else table


@dataclass(frozen=True)
class _Dims:
    """The sizes and switches of an ml-4m FM config that the key mapping needs."""

    dim: int
    enc_depth: int
    dec_depth: int
    num_heads: int
    hidden: int  # ml-4m's gated MLP width
    qk_norm: bool
    shared_mod: bool
    patch: int

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> _Dims:
        dim = config["dim"]
        return cls(
            dim=dim, enc_depth=config["encoder_depth"], dec_depth=config["decoder_depth"], num_heads=config["num_heads"],
            hidden=int(2 * int(dim * float(config.get("mlp_ratio", 4.0))) / 3),
            qk_norm=bool(config.get("qk_norm", False)),
            shared_mod=bool(config.get("share_modality_embeddings", True)),  # FourM's default in ml-4m
            patch=int(config.get("patch_size", 16)),
        )  # fmt: skip


_Tables = tuple[Tensor | None, Tensor | None]  # a modality's learned (encoder, decoder) position tables


@dataclass
class _Modalities:
    """Phase 1 of :func:`ml4m_to_fourm`: the checkpoint's modalities, read and checked."""

    infos: dict[str, ModalityInfo] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    learned: dict[str, _Tables] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def ml4m_to_fourm(
    config: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    keep: Iterable[str] = (),
    where: str = "ml-4m checkpoint",
) -> tuple[FourMConfig, dict[str, Tensor], ConversionInfo]:
    """An ml-4m FM config (dict) and state dict -> (FourMConfig, fourm state dict, ConversionInfo).

    Modalities fourm cannot express (``t5_caption``) are dropped with their weights and listed in
    ``info.dropped``; naming one in ``keep`` makes that a FourmError instead. Unknown config keys,
    unsupported values, unknown modalities and weights that are missing, mis-shaped or left over
    raise a one-line FourmError naming them."""
    check_ml4m_config(config, where)
    dims = _Dims.of(config)
    w = _Weights(tensors, where)
    mods = _read_modalities(config, dims, w, set(keep))
    fourm_config = _fourm_config(dims, mods.infos, where)
    state = _map_embeddings(w, dims, mods, fourm_config)
    state.update(_map_transformer(w, dims))
    w.check_all_used()
    return fourm_config, state, ConversionInfo(mods.infos, mods.dropped, mods.ignored)


# ---- phase 1: read and check the modalities of the checkpoint
def _read_modalities(config: Mapping[str, Any], dims: _Dims, w: _Weights, keep: set[str]) -> _Modalities:
    """Every modality of ``domains_in`` / ``domains_out`` in ml-4m's order: converted, or dropped
    (unsupported, not in ``keep``) with its weights."""
    domains_in, domains_out = set(config["domains_in"]), set(config["domains_out"])
    mods = _Modalities()
    for name in sorted(domains_in | domains_out):  # ml-4m's own modality order
        kind = _kind(name)
        enc, dec = f"encoder_embeddings.{name}.", f"decoder_embeddings.{name}."
        if kind == "unsupported":
            if name in keep:
                raise FourmError(f"{w.where}: modality '{name}' ({UNSUPPORTED[name]}) cannot be converted")
            mods.dropped[name] = UNSUPPORTED[name]
            mods.ignored += w.ignore(enc) + w.ignore(dec)
        elif kind == "patches":
            mods.infos[name] = _patch_modality(name, config, dims, w)
            mods.learned[name] = (None, None)
        else:
            is_out = name in domains_out
            info, tables = _token_modality(name, kind, config, dims, w, name in domains_in, is_out)
            mods.infos[name], mods.learned[name] = info, tables
            if is_out and kind == "image":  # ml-4m's decoder token table of an image modality is never read
                mods.ignored += w.ignore(dec + "token_emb.weight")
    if not mods.infos:
        raise FourmError(f"{w.where}: no modality left to convert")
    return mods


def _patch_modality(name: str, config: Mapping[str, Any], dims: _Dims, w: _Weights) -> ModalityInfo:
    """An ``rgb@<size>`` pixel-patch modality (input only: ml-4m has no decoder for pixels)."""
    enc, patch = f"encoder_embeddings.{name}.", dims.patch
    proj = w.tensors.get(enc + "proj.weight")
    if proj is None:
        raise FourmError(f"{w.where}: missing weight '{enc}proj.weight'")
    channels = proj.shape[1] // (patch * patch)
    side = _image_side(name, config) // patch
    n, table = _positions(w, enc + "pos_emb", "image", side * side, dims.dim)
    if table is not None:
        raise FourmError(f"{w.where}: learned positions of pixel modality '{name}' are not supported")
    return ModalityInfo("patches", 256, n, True, False, patch_size=patch, channels=channels,
                        pixel_mean=list(IMAGENET_MEAN[:channels]), pixel_std=list(IMAGENET_STD[:channels]))  # fmt: skip


def _token_modality(
    name: str, kind: str, config: Mapping[str, Any], dims: _Dims, w: _Weights, is_in: bool, is_out: bool
) -> tuple[ModalityInfo, _Tables]:
    """An image-token or sequence modality: vocabulary, length and position tables (fixed or learned)."""
    where, enc, dec = w.where, f"encoder_embeddings.{name}.", f"decoder_embeddings.{name}."
    source = enc if is_in else dec
    if not w.has(source + "token_emb.weight"):
        raise FourmError(f"{where}: missing weight '{source}token_emb.weight'")
    vocab = w.tensors[source + "token_emb.weight"].shape[0]
    if kind == "image":
        base = name.split("@")[0]
        side = _image_side(name, config) // IMAGE_PATCH_SIZES.get(base, dims.patch)
        default_length = None if base.endswith("_global") else side * side
    else:
        default_length = SEQUENCE_LENGTHS[name]
    tables, lengths = [], []
    for prefix, present in ((enc, is_in), (dec, is_out)):
        if present:
            n, table = _positions(w, prefix + "pos_emb", kind, default_length, dims.dim)
            lengths.append(n)
            tables.append(table)
        else:
            tables.append(None)
    if len(set(lengths)) > 1:
        raise FourmError(f"{where}: modality '{name}' has encoder and decoder position tables of different lengths {lengths}")
    if len({t is None for t, p in zip(tables, (is_in, is_out)) if p}) > 1:
        raise FourmError(f"{where}: modality '{name}' mixes fixed and learned position tables")
    is_learned = any(t is not None for t in tables)
    info = ModalityInfo(kind, vocab, lengths[0], is_in, is_out, "learned" if is_learned else "sincos")
    return info, (tables[0], tables[1])


# ---- phase 2: the fourm config
def _fourm_config(dims: _Dims, infos: Mapping[str, ModalityInfo], where: str) -> FourMConfig:
    """The FourMConfig computing what the ml-4m model computes (checked)."""
    modalities = {
        name: ModalityConfig(
            kind="image" if i.kind in ("image", "patches") else "sequence",
            vocab_size=i.vocab_size,
            length=i.length,
            input=i.input,
            target=i.target,
            patch_dim=i.patch_size * i.patch_size * i.channels,
            positions=i.positions,
        )
        for name, i in infos.items()
    }
    fourm_config = FourMConfig(
        dim=dims.dim, enc_depth=dims.enc_depth, dec_depth=dims.dec_depth, num_heads=dims.num_heads,
        mlp_hidden_dim=dims.hidden, qk_norm=dims.qk_norm, norm="layernorm", norm_eps=1e-6,
        share_modality_embeddings=dims.shared_mod, context_projection=True, context_norm=True, modalities=modalities,
    )  # fmt: skip
    try:
        fourm_config.validate()
    except FourmError as e:
        raise FourmError(f"{where}: {e}") from None
    return fourm_config


# ---- phase 3: map the keys
def _map_embeddings(w: _Weights, dims: _Dims, mods: _Modalities, fourm_config: FourMConfig) -> dict[str, Tensor]:
    """fourm's packed embedding tables (tokens, modality, positions), patch projections and heads."""
    dim, where, shared_mod = dims.dim, w.where, dims.shared_mod
    state: dict[str, Tensor] = {}
    zeros = torch.zeros(dim)

    def mod_emb(prefix: str) -> Tensor:
        return w.get(prefix + "mod_emb", (1, 1, dim)).reshape(dim)

    enc_rows, enc_mod, dec_mod, dec_tokens, heads, enc_pos, dec_pos = [], [], [], [], [], [], []
    for name, i in mods.infos.items():
        enc, dec = f"encoder_embeddings.{name}.", f"decoder_embeddings.{name}."
        if i.kind == "patches":
            weight = w.get(enc + "proj.weight", (dim, i.patch_size * i.patch_size * i.channels))
            scale, shift = _fold_pixel_normalisation(i)
            state[f"embeddings.patch_embed.{name}.weight"] = weight * scale[None]
            state[f"embeddings.patch_embed.{name}.bias"] = weight @ shift
        elif i.input:
            enc_rows.append(w.get(enc + "token_emb.weight", (i.vocab_size, dim)))
        else:
            enc_rows.append(torch.zeros(i.vocab_size, dim))  # target-only: rows the encoder never reads
        enc_has, dec_has = i.input and w.has(enc + "mod_emb"), i.target and w.has(dec + "mod_emb")
        if shared_mod:  # one table: a modality on both sides is stored once or twice (same values)
            if i.input and i.target and enc_has and dec_has:
                e, d = mod_emb(enc), mod_emb(dec)
                if not torch.equal(e, d):
                    raise FourmError(f"{where}: '{enc}mod_emb' and '{dec}mod_emb' differ, but share_modality_embeddings is on")
            enc_mod.append(mod_emb(enc) if enc_has or not i.target else mod_emb(dec))
        else:
            enc_mod.append(mod_emb(enc) if i.input else zeros)
            dec_mod.append(mod_emb(dec) if i.target else zeros)
        if i.target and i.kind == "sequence":
            dec_tokens.append(w.get(dec + "token_emb.weight", (i.vocab_size, dim)))
        if i.target:
            heads.append(w.get(dec + "to_logits.weight", (i.vocab_size, dim)))
        if i.positions == "learned":
            _learned_positions(fourm_config.modalities[name].num_positions, dim, mods.learned[name], enc_pos, dec_pos)
    state["embeddings.enc_tokens"] = torch.cat(enc_rows) if enc_rows else torch.zeros(0, dim)
    state["embeddings.enc_modality"] = torch.stack(enc_mod)
    if not shared_mod:
        state["embeddings.dec_modality"] = torch.stack(dec_mod)
    state["embeddings.mask_token"] = w.get("mask_token", (1, 1, dim)).reshape(dim)
    if dec_tokens:
        state["embeddings.dec_tokens"] = torch.cat(dec_tokens)
    if enc_pos:
        state["embeddings.enc_positions"] = torch.cat(enc_pos)
        state["embeddings.dec_positions"] = torch.cat(dec_pos)
    state["output_weight"] = torch.cat(heads)
    return state


def _learned_positions(rows: int, dim: int, tables: _Tables, enc_pos: list[Tensor], dec_pos: list[Tensor]) -> None:
    """Append a modality's (rows, dim) encoder and decoder position blocks (zeros where it has none)."""
    for out, table in zip((enc_pos, dec_pos), tables):
        block = torch.zeros(rows, dim)
        if table is not None:
            block[: table.shape[0]] = table  # sequences: fourm keeps one more (unused) row
        out.append(block)


def _map_transformer(w: _Weights, dims: _Dims) -> dict[str, Tensor]:
    """The encoder and decoder blocks, their final norms and the decoder's context projection."""
    dim, hidden = dims.dim, dims.hidden
    state: dict[str, Tensor] = {}

    def norm(src: str, dst: str, size: int = dim) -> None:
        state[dst + ".weight"] = w.get(src + ".weight", (size,))
        w.zero_bias(src + ".bias", size)

    def attention(src: str, dst: str, cross: bool) -> None:
        if cross:
            state[dst + ".q.weight"] = w.get(src + ".q.weight", (dim, dim))
            state[dst + ".kv.weight"] = w.get(src + ".kv.weight", (2 * dim, dim))
        else:
            state[dst + ".qkv.weight"] = w.get(src + ".qkv.weight", (3 * dim, dim))
        state[dst + ".proj.weight"] = w.get(src + ".proj.weight", (dim, dim))
        if dims.qk_norm:
            head_dim = dim // dims.num_heads
            norm(src + ".q_norm", dst + ".q_norm", head_dim)
            norm(src + ".k_norm", dst + ".k_norm", head_dim)

    def mlp(src: str, dst: str) -> None:
        gate, up = w.get(src + ".fc1.weight", (hidden, dim)), w.get(src + ".fc3.weight", (hidden, dim))
        state[dst + ".gate_up.weight"] = torch.cat([gate, up])  # fourm: silu(first half) * second half
        state[dst + ".down.weight"] = w.get(src + ".fc2.weight", (dim, hidden))

    for b in range(dims.enc_depth):
        src, dst = f"encoder.{b}", f"encoder.{b}"
        norm(src + ".norm1", dst + ".norm1")
        attention(src + ".attn", dst + ".attn", cross=False)
        norm(src + ".norm2", dst + ".norm2")
        mlp(src + ".mlp", dst + ".mlp")
    norm("encoder_norm", "enc_norm")
    state["context_proj.weight"] = w.get("decoder_proj_context.weight", (dim, dim))
    state["context_proj.bias"] = w.get("decoder_proj_context.bias", (dim,))
    for b in range(dims.dec_depth):
        src, dst = f"decoder.{b}", f"decoder.{b}"
        norm(src + ".norm1", dst + ".norm1")
        attention(src + ".self_attn", dst + ".self_attn", cross=False)
        norm(src + ".query_norm", dst + ".norm2")
        norm(src + ".context_norm", dst + ".context_norm")
        attention(src + ".cross_attn", dst + ".cross_attn", cross=True)
        norm(src + ".norm2", dst + ".norm3")
        mlp(src + ".mlp", dst + ".mlp")
    norm("decoder_norm", "dec_norm")
    return state


def _fold_pixel_normalisation(info: ModalityInfo) -> tuple[Tensor, Tensor]:
    """Per-column (scale, shift) with ``(level / 255 - mean) / std == scale * u + shift`` for fourm's
    patch values ``u = level * 2 / 255 - 1`` (columns ordered (y, x, channel), as in both codes)."""
    mean = torch.tensor(info.pixel_mean, dtype=torch.float64)
    std = torch.tensor(info.pixel_std, dtype=torch.float64)
    reps = info.patch_size * info.patch_size
    scale = (1.0 / (2.0 * std)).repeat(reps)  # (P,)
    shift = ((0.5 - mean) / std).repeat(reps)
    return scale.float(), shift.float()


# ------------------------------------------------------------------------------ files
def read_ml4m_weights(path: Path, what: str = "an ml-4m model") -> dict[str, Tensor]:
    """The tensors of ``path/model.safetensors``; FourmError when it is missing or damaged."""
    if not (path / WEIGHTS_NAME).is_file():
        raise FourmError(f"{path} is not {what}: {WEIGHTS_NAME} is missing")
    return read_safetensors(path / WEIGHTS_NAME)



def read_ml4m(
    src: str | Path, keep: Iterable[str] = ()
) -> tuple[Path, FourMConfig, dict[str, Tensor], ConversionInfo]:
    """An ml-4m FM directory (or hub id, online only) -> (its local path, FourM config, converted
    state dict, ConversionInfo); load the state with :func:`load_converted_state`."""
    path = resolve_source(src)
    config = read_ml4m_config(path)
    fourm_config, state, info = ml4m_to_fourm(config, read_ml4m_weights(path), keep, where=str(path))
    return path, fourm_config, state, info


def load_converted_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> nn.Module:
    """``model`` with a converted ``state`` loaded, in eval mode; FourmError when they do not fit
    (a bug of the converter, not of the user's files)."""
    return load_state_checked(model, state, f"{path}: converted weights do not fit {type(model).__name__}").eval()
