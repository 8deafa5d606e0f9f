"""Read the VQ-VAE tokenizers released with apple/ml-4m (``EPFL-VILAB/4M_tokenizers_*``) as fourm tokenizers.

An ml-4m tokenizer directory holds ``config.json`` (the keyword arguments of ml-4m's ``VQVAE`` class:
``enc_type``, ``dec_type``, ``quant_type``, ``codebook_size``, ``latent_dim``, ...) and
``model.safetensors`` (its state dict: ``encoder.*``, ``quant_proj``, ``quantize.*``,
``post_quant_proj``, ``decoder.*``, ``cls_emb`` for semantic segmentation). :func:`ml4m_vqvae_to_fourm`
maps both onto :class:`tokenizers_zoo.image.ml4m_vqvae.Ml4mVQVAE`, which computes what the ml-4m
tokenizer computes (same ids from the same inputs, same decoder output from the same ids).

Covered: ViT encoders / decoders (``vit_{s,b,l}_{enc,dec}``, pixel patches or 1x1 feature-map inputs,
``post_mlp``, ``out_conv``), MLP encoders / decoders (``BottleneckMLP/...``, ``MLP/...``), the
``lucid`` quantizer with ``norm_codes`` (cosine) or without (euclidean, optionally ``norm_latents``),
the ``memcodes`` quantizer with several heads, the semantic-segmentation label embedding, and
``undo_std``. The DiVAE tokenizers (diffusion decoders: rgb, depth, normals, edges) convert here with
``encoder_only=True`` (their encoder and quantizer are a VQ-VAE's; the decoder is left out); with
their diffusion decoder through :mod:`fourm.convert.ml4m_divae` (``Ml4mDiVAE``, which
:func:`fourm.convert.ml4m.load_ml4m_tokenizer` picks for a DiVAE unless ``encoder_only``).

Usage::

    tok, info = load_ml4m_vqvae("checkpoints/4M_tokenizers_semseg_4k_224-448", image_size=224)
    ids = tok.encode(class_ids)                    # (B, 196)
    convert_ml4m_vqvae(src, "models/tok_semseg")   # -> Ml4mVQVAE.save_pretrained directory
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fourm.errors import FourmError
from fourm.model.ml4m import _Weights, load_converted_state, read_ml4m_weights, resolve_source
from tokenizers_zoo.image.ml4m_vqvae import Ml4mBackboneConfig, Ml4mVQVAE, Ml4mVQVAEConfig

CONFIG_NAME = "config.json"

# ViT presets of ml-4m's tokenizers: name -> (width, depth, heads); MLP ratio 4, biased QKV
VIT_PRESETS: dict[str, tuple[int, int, int]] = {"vit_s": (512, 8, 8), "vit_b": (768, 12, 12), "vit_l": (1024, 24, 16)}
# config.json keys of ml-4m's VQ / VQVAE and their defaults there
DEFAULTS: dict[str, Any] = {
    "image_size": 224,
    "image_size_enc": None,
    "image_size_dec": None,
    "n_channels": 3,
    "n_labels": None,
    "enc_type": "vit_b_enc",
    "dec_type": "vit_b_dec",
    "patch_proj": True,
    "post_mlp": False,
    "patch_size": 16,
    "patch_size_dec": None,
    "quant_type": "lucid",
    "codebook_size": 16384,
    "num_codebooks": 1,
    "latent_dim": 32,
    "norm_codes": True,
    "norm_latents": False,
    "out_conv": False,
    "undo_std": False,
}
IGNORED_KEYS = (  # training-only settings (codebook EMA, dead-code replacement, losses, loading)
    "sync_codebook",
    "ema_decay",
    "threshold_ema_dead_code",
    "code_replacement_policy",
    "commitment_weight",
    "kmeans_init",
    "ckpt_path",
    "ignore_keys",
    "freeze_enc",
)
DIFFUSION_KEYS = (  # DiVAE / VQControlNet decoders: only their encoder converts (encoder_only)
    "num_train_timesteps",
    "cls_free_guidance_dropout",
    "masked_cfg",
    "masked_cfg_low",
    "masked_cfg_high",
    "scheduler",
    "beta_schedule",
    "prediction_type",
    "clip_sample",
    "thresholding",
    "conditioning",
    "dec_transformer_dropout",
    "zero_terminal_snr",
    "sd_path",
    "image_size_sd",
    "pretrained_cn",
    "enable_xformer",
    "adapter",
)
KNOWN_KEYS = (*DEFAULTS, *IGNORED_KEYS, *DIFFUSION_KEYS)
# lucid codebook buffers used only while training (EMA statistics)
TRAINING_BUFFERS = ("quantize._codebook.cluster_size", "quantize._codebook.embed_avg")

_MLP_RE = re.compile(r"^(BottleneckMLP|MLP)/B_(\d+)-Wi_(\d+)(?:-Ex_(\d+))?$")
_VIT_RE = re.compile(r"^(vit_[slb])_(enc|dec)$")


@dataclass
class VQVAEConversionInfo:
    """What :func:`ml4m_vqvae_to_fourm` built, and what it left out (name -> why)."""

    config: Ml4mVQVAEConfig
    kind: str  # "VQVAE" or "DiVAE" (diffusion decoder; here converted encoder only)
    encoder_only: bool
    ignored: dict[str, str] = field(default_factory=dict)


def is_ml4m_tokenizer_dir(path: str | Path) -> bool:
    """Whether ``path`` holds an ml-4m tokenizer ``config.json`` (``quant_type``/``enc_type`` keys)."""
    import json

    try:
        data = json.loads((Path(path) / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "domains_in" not in data and bool({"quant_type", "enc_type", "codebook_size"} & set(data))


def _is_diffusion(config: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> bool:
    dec = str(config.get("dec_type", ""))
    return (
        any(k in config for k in DIFFUSION_KEYS)
        or dec.startswith(("unet", "uvit", "controlnet"))
        or any(k.startswith("vae.") for k in tensors)
    )


def _backbone_type(name: Any, side: str, where: str) -> tuple[str, dict[str, Any]]:
    """``enc_type`` / ``dec_type`` -> (kind, fields of Ml4mBackboneConfig besides the grid)."""
    key = f"{side}_type"
    if not isinstance(name, str):
        raise FourmError(f"{where}: {key} must be a string, got {name!r}")
    m = _VIT_RE.match(name)
    if m:
        if m.group(2) != side:
            raise FourmError(f"{where}: {key}={name!r} is a{'n encoder' if m.group(2) == 'enc' else ' decoder'} preset")
        width, depth, heads = VIT_PRESETS[m.group(1)]
        return "vit", {"width": width, "depth": depth, "num_heads": heads, "mlp_ratio": 4.0}
    m = _MLP_RE.match(name)
    if m:
        blocks, width, expansion = int(m.group(2)), int(m.group(3)), int(m.group(4) or 4)
        if min(blocks, width, expansion) < 1:
            raise FourmError(f"{where}: {key}={name!r} has a zero size")
        kind = "bottleneck_mlp" if m.group(1) == "BottleneckMLP" else "mlp"
        return kind, {"width": width, "depth": blocks, "expansion": expansion}
    raise FourmError(
        f"{where}: {key}={name!r} is not supported (known: vit_s_{side}, vit_b_{side}, vit_l_{side}, "
        f"BottleneckMLP/B_<blocks>-Wi_<width>[-Ex_<factor>], MLP/B_<blocks>-Wi_<width>)"
    )


def _positive_int(config: Mapping[str, Any], key: str, where: str, allow_none: bool = False) -> int | None:
    value = config.get(key, DEFAULTS.get(key))
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FourmError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def check_ml4m_vqvae_config(config: Mapping[str, Any], where: str = "ml-4m tokenizer config") -> None:
    """FourmError naming unknown keys or values fourm cannot reproduce."""
    unknown = sorted(set(config) - set(KNOWN_KEYS))
    if unknown:
        raise FourmError(f"{where}: unknown ml-4m tokenizer config key(s) {', '.join(unknown)} "
                         f"(known: {', '.join(DEFAULTS)}, and training-only {', '.join(IGNORED_KEYS)})")
    for key in ("patch_proj", "post_mlp", "norm_codes", "norm_latents", "out_conv", "undo_std"):
        if not isinstance(config.get(key, DEFAULTS[key]), bool):
            raise FourmError(f"{where}: {key} must be true or false, got {config[key]!r}")
    quant = config.get("quant_type", DEFAULTS["quant_type"])
    if quant not in ("lucid", "memcodes"):
        raise FourmError(f"{where}: quant_type={quant!r} is not supported (known: lucid, memcodes)")
    if quant == "lucid" and config.get("num_codebooks", 1) != 1:
        raise FourmError(f"{where}: num_codebooks={config['num_codebooks']!r} with quant_type 'lucid' is not supported "
                         "(its multi-head variant has input/output projections ml-4m cannot decode)")
    for key in ("image_size", "n_channels", "patch_size", "codebook_size", "num_codebooks", "latent_dim"):
        _positive_int(config, key, where)
    for key in ("image_size_enc", "image_size_dec", "n_labels", "patch_size_dec"):
        _positive_int(config, key, where, allow_none=True)


@dataclass
class _VQSettings:
    """Phase 1 of :func:`ml4m_vqvae_to_fourm`: the checked settings of an ml-4m VQVAE config."""

    c: dict[str, Any]  # the config over ml-4m's defaults
    where: str
    enc_kind: str
    enc_fields: dict[str, Any]
    kind: str  # Ml4mVQVAEConfig.input: pixels, features, labels or vector
    out_channels: int
    quantizer: str  # memcodes, cosine or euclidean

    @property
    def labels(self) -> bool:
        return self.c["n_labels"] is not None

    @property
    def patch_dec(self) -> int:
        return self.c["patch_size_dec"] or self.c["patch_size"]

    def grid(self, size_key: str, patch_size: int) -> tuple[int, int]:
        side = self.c[size_key] or self.c["image_size"]
        if side % patch_size:
            raise FourmError(f"{self.where}: {size_key if self.c[size_key] else 'image_size'} {side} is not divisible "
                             f"by patch size {patch_size}")  # fmt: skip
        return (side // patch_size, side // patch_size)


def ml4m_vqvae_to_fourm(
    config: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    image_size: int | None = None,
    encoder_only: bool = False,
    domain: str = "",
    where: str = "ml-4m tokenizer",
) -> tuple[Ml4mVQVAEConfig, dict[str, Tensor], VQVAEConversionInfo]:
    """An ml-4m VQVAE config (dict) and state dict -> (Ml4mVQVAEConfig, its state dict, info).

    ``image_size``: the working image size of the converted tokenizer (default: ml-4m's
    ``image_size``); position tables stay at the training grid and are resized on the fly, as in
    ml-4m. ``encoder_only`` leaves the decoder out (required for DiVAE / ControlNet tokenizers here:
    a DiVAE's diffusion decoder converts with :func:`fourm.convert.ml4m_divae.ml4m_divae_to_fourm`). Unknown config keys, unsupported values and weights that are
    missing, mis-shaped or left over raise a one-line FourmError naming them."""
    check_ml4m_vqvae_config(config, where)
    diffusion = _is_diffusion(config, tensors)
    if diffusion and not encoder_only:
        raise FourmError(f"{where}: a DiVAE / ControlNet tokenizer (diffusion decoder): convert a DiVAE with "
                         "fourm.convert.ml4m_divae.load_ml4m_divae (fourm-convert ml4m-tokenizer), or its encoder "
                         "only here (encoder_only / --encoder-only)")  # fmt: skip
    w = _Weights(tensors, where)
    encoder_only, ignored = _left_out(w, encoder_only)
    s = _vqvae_settings(config, where)
    m = _VQStateMapper(w)
    enc = _map_vq_encoder(m, s)
    _map_quantizer(m, s)
    dec = None if encoder_only else _map_vq_decoder(m, s)
    w.check_all_used()
    cfg = _vqvae_config(s, enc, dec, image_size, domain)
    info = VQVAEConversionInfo(cfg, "DiVAE" if diffusion else "VQVAE", encoder_only, ignored)
    return cfg, m.state, info


# ---- phase 1: read and check the config and what the checkpoint leaves out
def _left_out(w: _Weights, encoder_only: bool) -> tuple[bool, dict[str, str]]:
    """(encoder only?, {left-out weights: why}): the decoder when ``encoder_only`` or absent, and
    the codebook's training statistics."""
    ignored: dict[str, str] = {}
    if encoder_only:
        for prefix in ("decoder.", "post_quant_proj.", "vae."):
            keys = w.ignore(prefix)
            if keys:
                ignored[prefix.rstrip(".")] = "decoder left out (encoder only)"
    elif not any(k.startswith(("decoder.", "post_quant_proj.")) for k in w.tensors):
        encoder_only = True  # an encoder-only checkpoint (ml-4m's VQ class)
        ignored["decoder"] = "not in the checkpoint (encoder only)"
    for key in TRAINING_BUFFERS:
        if w.ignore(key):
            ignored[key] = "codebook training statistics"
    return encoder_only, ignored


def _vqvae_settings(config: Mapping[str, Any], where: str) -> _VQSettings:
    """The settings of a (checked) ml-4m VQVAE config; FourmError for combinations fourm cannot reproduce."""
    c = {**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}}
    enc_kind, enc_fields = _backbone_type(c["enc_type"], "enc", where)
    labels = c["n_labels"] is not None
    if enc_kind == "vit":
        kind = "labels" if labels else ("pixels" if c["patch_proj"] else "features")
    else:
        kind = "labels" if labels else "vector"
    if not c["patch_proj"] and labels:
        raise FourmError(f"{where}: patch_proj=false with n_labels is not supported")
    if c["undo_std"] and (kind != "pixels" or c["n_channels"] != 3):
        raise FourmError(f"{where}: undo_std needs 3-channel pixel inputs")
    out_channels = c["n_labels"] if labels else c["n_channels"]
    latent, heads = c["latent_dim"], c["num_codebooks"]
    quantizer = "memcodes" if c["quant_type"] == "memcodes" else ("cosine" if c["norm_codes"] else "euclidean")
    if quantizer == "memcodes" and latent % heads:
        raise FourmError(f"{where}: latent_dim {latent} is not divisible by num_codebooks {heads}")
    return _VQSettings(c, where, enc_kind, enc_fields, kind, out_channels, quantizer)


# ---- phase 2: map the keys
class _VQStateMapper:
    """ml-4m weights -> the Ml4mVQVAE state dict, one layer at a time (names and shapes checked)."""

    def __init__(self, w: _Weights) -> None:
        self.w, self.state = w, {}

    def copy(self, src: str, dst: str, shape: tuple[int, ...]) -> None:
        self.state[dst] = self.w.get(src, shape)

    def linear(self, src: str, dst: str, n_out: int, n_in: int, conv: tuple[int, ...] | None = None) -> None:
        """nn.Linear (or a Conv2d of kernel ``conv`` read as one) with bias."""
        weight = self.w.get(src + ".weight", (n_out, n_in, *conv) if conv else (n_out, n_in))
        self.state[dst + ".weight"] = weight.reshape(n_out, -1)
        self.copy(src + ".bias", dst + ".bias", (n_out,))

    def norm(self, src: str, dst: str, dim: int) -> None:
        self.copy(src + ".weight", dst + ".weight", (dim,))
        self.copy(src + ".bias", dst + ".bias", (dim,))

    def vit(self, src: str, dst: str, bb: Ml4mBackboneConfig) -> None:
        d, hidden, where = bb.width, int(bb.mlp_ratio * bb.width), self.w.where
        if not self.w.has(src + ".pos_emb"):
            raise FourmError(f"{where}: missing weight '{src}.pos_emb'")
        got = tuple(self.w.tensors[src + ".pos_emb"].shape)
        if got != (1, d, *bb.grid):
            raise FourmError(f"{where}: weight '{src}.pos_emb' has shape {got}, expected {(1, d, *bb.grid)} "
                             f"(image size / patch size of the config)")  # fmt: skip
        self.copy(src + ".pos_emb", dst + ".pos", (1, d, *bb.grid))
        for i in range(bb.depth):
            s, t = f"{src}.blocks.{i}", f"{dst}.blocks.{i}"
            self.norm(s + ".norm1", t + ".norm1", d)
            self.linear(s + ".attn.qkv", t + ".attn.qkv", 3 * d, d)
            self.linear(s + ".attn.proj", t + ".attn.proj", d, d)
            self.norm(s + ".norm2", t + ".norm2", d)
            self.linear(s + ".mlp.fc1", t + ".fc1", hidden, d)
            self.linear(s + ".mlp.fc2", t + ".fc2", d, hidden)
        if bb.post_mlp:
            self.norm(src + ".norm_mlp", dst + ".post.norm", d)
            self.linear(src + ".post_mlp.fc1", dst + ".post.fc1", hidden, d)
            self.linear(src + ".post_mlp.fc2", dst + ".post.fc2", d, hidden)

    def mlp(self, src: str, dst: str, bb: Ml4mBackboneConfig, dim_in: int, dim_out: int) -> None:
        d = bb.width
        self.linear(src + ".linear_in", dst + ".linear_in", d, dim_in)
        if bb.kind == "bottleneck_mlp":
            for i in range(bb.depth):
                self.norm(f"{src}.layernorms.{i}", f"{dst}.norms.{i}", d)
                self.linear(f"{src}.blocks.{i}.block.0", f"{dst}.fc1.{i}", bb.expansion * d, d)
                self.linear(f"{src}.blocks.{i}.block.2", f"{dst}.fc2.{i}", d, bb.expansion * d)
        else:
            for i in range(bb.depth - 1):
                self.norm(f"{src}.layernorms.{i}", f"{dst}.norms.{i}", d)
                self.linear(f"{src}.layers.{i}", f"{dst}.layers.{i}", d, d)
        self.linear(src + ".linear_out", dst + ".linear_out", dim_out, d)


def _map_vq_encoder(m: _VQStateMapper, s: _VQSettings) -> Ml4mBackboneConfig:
    """The label embedding, the encoder and its projection to the latent -> the encoder's config."""
    c, patch, channels = s.c, s.c["patch_size"], s.c["n_channels"]
    enc = Ml4mBackboneConfig(kind=s.enc_kind, post_mlp=c["post_mlp"] and s.enc_kind == "vit",
                             grid=s.grid("image_size_enc", patch) if s.enc_kind == "vit" else (1, 1), **s.enc_fields)  # fmt: skip
    if s.labels:
        m.copy("cls_emb.weight", "label_embed.weight", (c["n_labels"], channels))
    if s.enc_kind == "vit":
        kernel = (patch, patch) if s.kind in ("pixels", "labels") else (1, 1)
        proj = m.w.tensors.get("encoder.proj.weight")
        if proj is not None and proj.dim() == 4 and tuple(proj.shape[2:]) != kernel:
            raise FourmError(f"{s.where}: weight 'encoder.proj.weight' has a {tuple(proj.shape[2:])} kernel, expected "
                             f"{kernel} (patch_proj={c['patch_proj']}, patch_size={patch})")  # fmt: skip
        m.linear("encoder.proj", "patch_embed", enc.width, channels, kernel)
        m.vit("encoder", "encoder", enc)
    else:
        m.mlp("encoder", "encoder", enc, channels, enc.width)
    m.linear("quant_proj", "to_latent", c["latent_dim"], enc.width, (1, 1))
    return enc


def _map_quantizer(m: _VQStateMapper, s: _VQSettings) -> None:
    """The codebook (lucid: cosine / euclidean) or the memcodes heads."""
    latent, size, heads = s.c["latent_dim"], s.c["codebook_size"], s.c["num_codebooks"]
    if s.quantizer == "memcodes":
        hd = latent // heads
        m.copy("quantize.codes", "quantizer.codes", (heads, size, hd))
        m.copy("quantize.to_k.weight", "quantizer.keys", (heads, hd, hd))
        m.copy("quantize.to_v.weight", "quantizer.values", (heads, hd, hd))
        return
    if m.w.has("quantize._codebook.initted"):
        if not bool(m.w.get("quantize._codebook.initted").reshape(-1)[0]):
            raise FourmError(f"{s.where}: the codebook was never initialised (quantize._codebook.initted is 0)")
    m.copy("quantize._codebook.embed", "quantizer.codebook", (size, latent))


def _map_vq_decoder(m: _VQStateMapper, s: _VQSettings) -> Ml4mBackboneConfig:
    """The projection from the latent, the decoder, its head and ``out_conv`` -> the decoder's config."""
    c, patch_dec, ch = s.c, s.patch_dec, s.out_channels
    dec_kind, dec_fields = _backbone_type(c["dec_type"], "dec", s.where)
    if dec_kind != "vit" and s.enc_kind == "vit" or dec_kind == "vit" and s.enc_kind != "vit":
        raise FourmError(f"{s.where}: enc_type {c['enc_type']!r} with dec_type {c['dec_type']!r} is not supported "
                         "(both ViT or both MLP)")  # fmt: skip
    dec = Ml4mBackboneConfig(kind=dec_kind, post_mlp=c["post_mlp"] and dec_kind == "vit",
                             grid=s.grid("image_size_dec", patch_dec) if dec_kind == "vit" else (1, 1), **dec_fields)  # fmt: skip
    m.linear("post_quant_proj", "from_latent", dec.width, c["latent_dim"], (1, 1))
    if dec_kind != "vit":
        m.mlp("decoder", "decoder", dec, dec.width, ch)
        return dec
    m.vit("decoder", "decoder", dec)
    per_token = ch * (patch_dec**2 if s.kind in ("pixels", "labels") else 1)
    m.linear("decoder.out_proj", "head", per_token, dec.width)
    if c["out_conv"]:
        for i in range(2):
            src, t = f"decoder.out_conv.{i}", f"out_conv.{i}"
            m.copy(src + ".dwconv.weight", t + ".dwconv.weight", (ch, 1, 7, 7))
            m.copy(src + ".dwconv.bias", t + ".dwconv.bias", (ch,))
            m.norm(src + ".norm", t + ".norm", ch)
            m.linear(src + ".pwconv1", t + ".fc1", 4 * ch, ch)
            m.linear(src + ".pwconv2", t + ".fc2", ch, 4 * ch)
            m.copy(src + ".gamma", t + ".gamma", (ch,))
    return dec


# ---- phase 3: the fourm config
def _vqvae_config(
    s: _VQSettings, enc: Ml4mBackboneConfig, dec: Ml4mBackboneConfig | None, image_size: int | None, domain: str
) -> Ml4mVQVAEConfig:
    """The (checked) Ml4mVQVAEConfig, working at ``image_size`` (default: ml-4m's ``image_size``)."""
    c = s.c
    cfg = Ml4mVQVAEConfig(
        domain=domain, input=s.kind, in_channels=c["n_channels"], num_labels=c["n_labels"], undo_std=c["undo_std"],
        image_size=image_size if image_size is not None else c["image_size"], patch_size=c["patch_size"],
        encoder=enc, decoder=dec, decoder_patch_size=s.patch_dec, out_channels=s.out_channels,
        out_conv=bool(c["out_conv"]) and dec is not None and dec.kind == "vit", latent_dim=c["latent_dim"],
        quantizer=s.quantizer, codebook_size=c["codebook_size"],
        num_codebooks=c["num_codebooks"] if s.quantizer == "memcodes" else 1, norm_latents=c["norm_latents"],
    )  # fmt: skip
    try:
        cfg.validate()
    except FourmError as e:
        raise FourmError(f"{s.where}: {e}") from None
    return cfg


def read_ml4m_tokenizer_config(path: Path) -> dict:
    from fourm.utils.config import read_json_object

    file = path / CONFIG_NAME
    if not file.is_file():
        raise FourmError(f"{path} is not an ml-4m tokenizer: {CONFIG_NAME} is missing")
    data = read_json_object(file, "ml-4m tokenizer config")
    if "domains_in" in data:
        raise FourmError(f"{path} is an ml-4m FM model, not a tokenizer (convert it with fourm-convert ml4m)")
    return data


def load_ml4m_vqvae(
    src: str | Path,
    image_size: int | None = None,
    encoder_only: bool = False,
    domain: str = "",
    device: str | torch.device | None = None,
) -> tuple[Ml4mVQVAE, VQVAEConversionInfo]:
    """An ml-4m VQ-VAE directory (or hub id such as ``EPFL-VILAB/4M_tokenizers_semseg_4k_224-448``,
    online only) -> (Ml4mVQVAE in eval mode, info)."""
    path = resolve_source(src)
    config = read_ml4m_tokenizer_config(path)
    cfg, state, info = ml4m_vqvae_to_fourm(config, read_ml4m_weights(path), image_size, encoder_only,
                                           domain=domain, where=str(path))
    model = load_converted_state(Ml4mVQVAE(cfg), state, path)
    return (model.to(device) if device is not None else model), info


def convert_ml4m_vqvae(
    src: str | Path, out: str | Path, image_size: int | None = None, encoder_only: bool = False, domain: str = ""
) -> VQVAEConversionInfo:
    """Convert the ml-4m VQ-VAE ``src`` into a fourm tokenizer directory ``out``
    (:meth:`Ml4mVQVAE.save_pretrained`, loaded back with :meth:`Ml4mVQVAE.from_pretrained`)."""
    model, info = load_ml4m_vqvae(src, image_size, encoder_only, domain)
    model.save_pretrained(out)
    return info
