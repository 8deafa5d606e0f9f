"""Read the DiVAE tokenizers released with apple/ml-4m (``EPFL-VILAB/4M_tokenizers_{rgb,depth,normal,edge}_*``)
as fourm tokenizers, diffusion decoder included.

An ml-4m DiVAE directory holds ``config.json`` (the keyword arguments of ml-4m's ``DiVAE`` class: those
of its VQ encoder, ``enc_type``, ``codebook_size``, ``latent_dim``, ..., plus ``dec_type``,
``num_train_timesteps``, ``scheduler``, ``beta_schedule``, ``prediction_type``, ``clip_sample``,
``thresholding``, ``zero_terminal_snr``, ``image_size_dec``, and training-only settings) and
``model.safetensors`` (its state dict: the VQ encoder's keys, and ``decoder.*``: ml-4m's
``PatchedUNetCondCat`` with ``time_embed``, ``input_blocks``, ``middle_block``, ``output_blocks``,
``out``). :func:`ml4m_divae_to_fourm` maps both onto
:class:`tokenizers_zoo.image.ml4m_divae.Ml4mDiVAE`: the encoder and quantiser through
:func:`fourm.convert.ml4m_vqvae.ml4m_vqvae_to_fourm` (encoder only), the UNet here, the noise
schedule into :class:`~tokenizers_zoo.image.ml4m_divae.Ml4mDiffusionConfig`. The result gives ml-4m's
ids, and ml-4m's decoded images for the same generator state and steps.

Covered: ``dec_type`` ``unet_patched`` (the released DiVAEs); schedulers ``ddpm`` and ``ddim``; every
beta schedule of ml-4m's schedulers. Not covered (one-line errors): UViT decoders (``uvit_*``) and
VQControlNet tokenizers (``controlnet*``; their encoder converts with
:func:`fourm.convert.ml4m_vqvae.load_ml4m_vqvae` ``encoder_only=True``).

Usage::

    tok, info = load_ml4m_divae("checkpoints/4M_tokenizers_rgb_16k_224-448", image_size=224)
    ids = tok.encode(images)                       # (B, 196), images in [-1, 1]
    out = tok.decode(ids, steps=50, seed=0)        # (B, 3, 224, 224)
    convert_ml4m_divae(src, "models/tok_rgb")      # -> Ml4mDiVAE.save_pretrained directory
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fourm.convert.ml4m_vqvae import ml4m_vqvae_to_fourm, read_ml4m_tokenizer_config
from fourm.errors import FourmError
from fourm.model.ml4m import (
    _Weights,
    load_converted_state,
    read_ml4m_weights,
    resolve_source,
)
from tokenizers_zoo.image.ml4m_divae import (
    PREDICTION_TYPES,
    SCHEDULERS,
    Ml4mDiffusionConfig,
    Ml4mDiVAE,
    Ml4mUNetConfig,
    check_beta_schedule,
    unet_layout,
)
from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAEConfig

WEIGHTS_NAME = "model.safetensors"
# ml-4m's UNet presets (fourm.vq.models.unet.unet): dec_type -> PatchedUNetCondCat sizes
UNET_PRESETS: dict[str, dict[str, Any]] = {
    "unet_patched": {"patch_size": 4, "model_channels": 256, "num_res_blocks": 3, "attention_resolutions": (4, 8),
                     "channel_mult": (1, 2, 2, 2), "num_heads": 1},
}
RELEASED_UNET_PRESETS = {k: dict(v) for k, v in UNET_PRESETS.items()}  # as released (tests shrink UNET_PRESETS)
# DiVAE's constructor defaults (for keys a config.json leaves out)
DIVAE_DEFAULTS: dict[str, Any] = {
    "dec_type": "unet_patched",
    "num_train_timesteps": 1000,
    "scheduler": "ddpm",
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "thresholding": True,
    "zero_terminal_snr": True,
}
CONTROLNET_KEYS = ("sd_path", "image_size_sd", "pretrained_cn", "adapter", "enable_xformer")


@dataclass
class DiVAEConversionInfo:
    """What :func:`ml4m_divae_to_fourm` built, and what it left out (name -> why)."""

    config: Ml4mVQVAEConfig
    decoder: Ml4mDiffusionConfig
    dec_type: str
    ignored: dict[str, str] = field(default_factory=dict)
    kind: str = "DiVAE"
    encoder_only: bool = False

    def describe(self) -> str:
        d, u = self.decoder, self.decoder.unet
        return (f"diffusion ({self.dec_type}: {u.model_channels} channels x {list(u.channel_mult)}, patch "
                f"{u.patch_size}; {d.scheduler}, {d.beta_schedule}, {d.prediction_type}, {d.default_steps} steps)")


def is_ml4m_divae_config(config: Mapping[str, Any]) -> bool:
    """Whether an ml-4m tokenizer config is a DiVAE's (a diffusion decoder that is not a ControlNet)."""
    dec = str(config.get("dec_type", ""))
    if dec.startswith("controlnet") or any(k in config for k in CONTROLNET_KEYS):
        return False
    return dec.startswith(("unet_", "uvit_")) or "beta_schedule" in config or "num_train_timesteps" in config


def is_ml4m_divae_source(src: str | Path) -> bool:
    """Whether ``src`` is a local ml-4m DiVAE directory (no download: hub ids give False)."""
    path = Path(src).expanduser()
    try:
        data = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "domains_in" not in data and "format" not in data and is_ml4m_divae_config(data)


def local_source(src: str | Path) -> str | Path:
    """``src`` itself when it is a local path (or not a hub id), else its downloaded snapshot
    (:func:`fourm.convert.ml4m.resolve_source`, online only)."""
    if Path(src).expanduser().exists() or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", str(src)):
        return src
    return resolve_source(src)


def _flag(config: Mapping[str, Any], key: str, where: str) -> bool:
    value = config.get(key, DIVAE_DEFAULTS[key])
    if not isinstance(value, bool):
        raise FourmError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def diffusion_config(config: Mapping[str, Any], where: str = "ml-4m DiVAE config") -> tuple[Ml4mDiffusionConfig, str]:
    """The decoder settings of an ml-4m DiVAE config -> (Ml4mDiffusionConfig, dec_type); FourmError
    naming a value fourm cannot reproduce."""
    dec = config.get("dec_type", DIVAE_DEFAULTS["dec_type"])
    if not isinstance(dec, str):
        raise FourmError(f"{where}: dec_type must be a string, got {dec!r}")
    if dec.startswith("controlnet") or any(k in config for k in CONTROLNET_KEYS):
        raise FourmError(f"{where}: a VQControlNet tokenizer (Stable Diffusion ControlNet decoder) is not supported; "
                         "convert its encoder only (--encoder-only)")
    if dec.startswith("uvit_"):
        raise FourmError(f"{where}: dec_type {dec!r} (UViT diffusion decoder) is not supported (known: {', '.join(UNET_PRESETS)})")
    if dec not in UNET_PRESETS:
        raise FourmError(f"{where}: dec_type {dec!r} is not supported (known: {', '.join(UNET_PRESETS)})")
    scheduler = config.get("scheduler", DIVAE_DEFAULTS["scheduler"])
    if scheduler not in SCHEDULERS:
        raise FourmError(f"{where}: scheduler {scheduler!r} is not supported (known: {', '.join(SCHEDULERS)})")
    prediction = config.get("prediction_type", DIVAE_DEFAULTS["prediction_type"])
    if prediction not in PREDICTION_TYPES:
        raise FourmError(f"{where}: prediction_type {prediction!r} is not supported (known: {', '.join(PREDICTION_TYPES)})")
    betas = config.get("beta_schedule", DIVAE_DEFAULTS["beta_schedule"])
    if not isinstance(betas, str):
        raise FourmError(f"{where}: beta_schedule must be a string, got {betas!r}")
    try:
        check_beta_schedule(betas, scheduler)
    except FourmError as e:
        raise FourmError(f"{where}: {e}") from None
    steps = config.get("num_train_timesteps", DIVAE_DEFAULTS["num_train_timesteps"])
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise FourmError(f"{where}: num_train_timesteps must be a positive integer, got {steps!r}")
    channels, latent = config.get("n_channels", 3), config.get("latent_dim", 32)
    sample = config.get("image_size_dec") or config.get("image_size", 224)
    preset = UNET_PRESETS[dec]
    unet = Ml4mUNetConfig(channels=channels, cond_channels=latent, patch_size=preset["patch_size"],
                          model_channels=preset["model_channels"], channel_mult=tuple(preset["channel_mult"]),
                          num_res_blocks=preset["num_res_blocks"],
                          attention_resolutions=tuple(preset["attention_resolutions"]), num_heads=preset["num_heads"])
    cfg = Ml4mDiffusionConfig(unet=unet, sample_size=sample, scheduler=scheduler, num_train_timesteps=steps,
                              beta_schedule=betas, prediction_type=prediction,
                              clip_sample=_flag(config, "clip_sample", where),
                              thresholding=_flag(config, "thresholding", where),
                              zero_terminal_snr=_flag(config, "zero_terminal_snr", where))
    try:
        cfg.validate()
    except FourmError as e:
        raise FourmError(f"{where}: {e}") from None
    return cfg, dec


def _unet_state(w: _Weights, cfg: Ml4mUNetConfig) -> dict[str, Tensor]:
    """ml-4m's ``decoder.*`` (PatchedUNetCondCat) -> Ml4mUNet's state dict, every shape checked."""
    state: dict[str, Tensor] = {}
    mc, p = cfg.model_channels, cfg.patch_size
    emb = 4 * mc

    def copy(src: str, dst: str, shape: tuple[int, ...], reshape: tuple[int, ...] | None = None) -> None:
        t = w.get("decoder." + src, shape)
        state[dst] = t.reshape(reshape) if reshape else t

    def conv(src: str, dst: str, cout: int, cin: int, k: int = 3) -> None:
        copy(src + ".weight", dst + ".weight", (cout, cin, k, k))
        copy(src + ".bias", dst + ".bias", (cout,))

    def norm(src: str, dst: str, ch: int) -> None:
        copy(src + ".weight", dst + ".weight", (ch,))
        copy(src + ".bias", dst + ".bias", (ch,))

    def res(src: str, dst: str, cin: int, cout: int) -> None:
        norm(src + ".in_layers.0", dst + ".norm1", cin)
        conv(src + ".in_layers.2", dst + ".conv1", cout, cin)
        copy(src + ".emb_layers.1.weight", dst + ".emb.weight", (cout, emb))
        copy(src + ".emb_layers.1.bias", dst + ".emb.bias", (cout,))
        norm(src + ".out_layers.0", dst + ".norm2", cout)
        conv(src + ".out_layers.3", dst + ".conv2", cout, cout)
        if cin != cout:
            conv(src + ".skip_connection", dst + ".skip", cout, cin, 1)

    def attn(src: str, dst: str, ch: int) -> None:
        norm(src + ".norm", dst + ".norm", ch)
        copy(src + ".qkv.weight", dst + ".qkv.weight", (3 * ch, ch, 1), (3 * ch, ch))
        copy(src + ".qkv.bias", dst + ".qkv.bias", (3 * ch,))
        copy(src + ".proj_out.weight", dst + ".proj.weight", (ch, ch, 1), (ch, ch))
        copy(src + ".proj_out.bias", dst + ".proj.bias", (ch,))

    copy("time_embed.0.weight", "time_fc1.weight", (emb, mc))
    copy("time_embed.0.bias", "time_fc1.bias", (emb,))
    copy("time_embed.2.weight", "time_fc2.weight", (emb, emb))
    copy("time_embed.2.bias", "time_fc2.bias", (emb,))
    conv("input_blocks.0.0", "conv_in", cfg.channel_mult[0] * mc, cfg.channels * p * p + cfg.cond_channels)
    down, up = unet_layout(cfg)
    for i, s in enumerate(down):
        src, dst = f"input_blocks.{i + 1}", f"down.{i}"
        if s.get("down"):
            conv(src + ".0.op", dst + ".down", s["down"], s["down"])
            continue
        res(src + ".0", dst + ".res", *s["res"])
        if s["attn"]:
            attn(src + ".1", dst + ".attn", s["attn"])
    width = cfg.channel_mult[-1] * mc
    res("middle_block.0", "mid1", width, width)
    attn("middle_block.1", "mid_attn", width)
    res("middle_block.2", "mid2", width, width)
    for i, s in enumerate(up):
        src, dst = f"output_blocks.{i}", f"up.{i}"
        res(src + ".0", dst + ".res", *s["res"])
        k = 1
        if s["attn"]:
            attn(f"{src}.1", dst + ".attn", s["attn"])
            k = 2
        if s.get("up"):
            conv(f"{src}.{k}.conv", dst + ".up", s["up"], s["up"])
    norm("out.0", "norm_out", cfg.channel_mult[0] * mc)
    conv("out.2", "conv_out", cfg.channels * p * p, cfg.channel_mult[0] * mc)
    return state


def ml4m_divae_to_fourm(
    config: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    image_size: int | None = None,
    domain: str = "",
    where: str = "ml-4m DiVAE",
) -> tuple[Ml4mVQVAEConfig, dict[str, Tensor], Ml4mDiffusionConfig, dict[str, Tensor], DiVAEConversionInfo]:
    """An ml-4m DiVAE config (dict) and state dict -> (encoder config, encoder state, decoder config,
    UNet state, info). ``image_size``: the working size of the encoder (default ml-4m's
    ``image_size``). Unknown config keys, unsupported values and weights that are missing,
    mis-shaped or left over raise a one-line FourmError naming them."""
    if not is_ml4m_divae_config(config):
        if str(config.get("dec_type", "")).startswith("controlnet") or any(k in config for k in CONTROLNET_KEYS):
            diffusion_config(config, where)  # raises the ControlNet error
        raise FourmError(f"{where}: not a DiVAE (no diffusion decoder settings: dec_type "
                         f"{config.get('dec_type')!r}); convert VQ-VAEs with fourm.convert.ml4m_vqvae")
    if config.get("n_labels") is not None:
        raise FourmError(f"{where}: a DiVAE over class labels (n_labels) is not supported")
    hint = " (its encoder alone converts with --encoder-only / encoder_only=True)"
    try:
        dec_cfg, dec_type = diffusion_config(config, where)
    except FourmError as e:
        raise FourmError(f"{e}{hint}") from None
    vq_tensors = {k: v for k, v in tensors.items() if not k.startswith("decoder.")}
    vq_cfg, vq_state, vq_info = ml4m_vqvae_to_fourm(config, vq_tensors, image_size, encoder_only=True,
                                                    domain=domain, where=where)
    if vq_cfg.input not in ("pixels", "features"):
        raise FourmError(f"{where}: a DiVAE needs an image encoder (ViT), got enc_type {config.get('enc_type')!r}")
    if not any(k.startswith("decoder.") for k in tensors):
        raise FourmError(f"{where}: no diffusion decoder weights (decoder.*) in the checkpoint{hint}")
    w = _Weights({k: v for k, v in tensors.items() if k.startswith("decoder.")}, where)
    try:
        unet_state = _unet_state(w, dec_cfg.unet)
        w.check_all_used()
    except FourmError as e:
        raise FourmError(f"{e}{hint}") from None
    ignored = {k: v for k, v in vq_info.ignored.items() if k != "decoder"}
    info = DiVAEConversionInfo(vq_cfg, dec_cfg, dec_type, ignored)
    return vq_cfg, vq_state, dec_cfg, unet_state, info


def read_ml4m_divae_weights(path: Path) -> dict[str, Tensor]:
    return read_ml4m_weights(path, "an ml-4m tokenizer")


def load_ml4m_divae(
    src: str | Path, image_size: int | None = None, domain: str = "", device: str | torch.device | None = None
) -> tuple[Ml4mDiVAE, DiVAEConversionInfo]:
    """An ml-4m DiVAE directory (or hub id such as ``EPFL-VILAB/4M_tokenizers_rgb_16k_224-448``, online
    only) -> (Ml4mDiVAE in eval mode, info)."""
    path = resolve_source(src)
    config = read_ml4m_tokenizer_config(path)
    where = str(path)
    vq_cfg, vq_state, dec_cfg, unet_state, info = ml4m_divae_to_fourm(
        config, read_ml4m_divae_weights(path), image_size, domain=domain, where=where)
    model = Ml4mDiVAE(vq_cfg, dec_cfg)
    for module, state in ((model.vq, vq_state), (model.unet, unet_state)):
        load_converted_state(module, state, path)  # a mismatch is a bug of this converter, not of the user's files
    model.eval()
    return (model.to(device) if device is not None else model), info


def convert_ml4m_divae(src: str | Path, out: str | Path, image_size: int | None = None, domain: str = "") -> DiVAEConversionInfo:
    """Convert the ml-4m DiVAE ``src`` into a fourm tokenizer directory ``out``
    (:meth:`Ml4mDiVAE.save_pretrained`, loaded back with :meth:`Ml4mDiVAE.from_pretrained`)."""
    model, info = load_ml4m_divae(src, image_size, domain)
    model.save_pretrained(out)
    return info


def tokenizer_entry(tok: Ml4mDiVAE, info: DiVAEConversionInfo) -> dict[str, Any]:
    """The description ``fourm-convert`` prints and records for a converted DiVAE."""
    entry: dict[str, Any] = {"kind": "DiVAE", "input": tok.cfg.input, "vocab_size": tok.vocab_size,
                             "num_tokens": tok.num_tokens, "image_size": tok.cfg.image_size, "encoder_only": False,
                             "decoder": info.describe()}
    if info.ignored:
        entry["left_out"] = dict(info.ignored)
    return entry


def load_ml4m_divae_tokenizer(src: str | Path, image_size: int | None = None, domain: str = "") -> tuple[Ml4mDiVAE, dict[str, Any]]:
    """(Ml4mDiVAE, description) for ``fourm-convert ml4m-tokenizer``."""
    tok, info = load_ml4m_divae(src, image_size, domain)
    return tok, tokenizer_entry(tok, info)


# ------------------------------------------------------------------------------ fourm-convert ml4m --tokenizer
def has_unet_decoder(config: Mapping[str, Any]) -> bool:
    """Whether an ml-4m tokenizer config is a DiVAE whose diffusion decoder fourm converts (a UNet
    ``dec_type`` of :data:`UNET_PRESETS`); other diffusion decoders (UViT, ControlNet) convert their
    encoder only in a bundle (:func:`fourm.convert.ml4m.load_ml4m_tokenizer_for`)."""
    return is_ml4m_divae_config(config) and config.get("dec_type", DIVAE_DEFAULTS["dec_type"]) in UNET_PRESETS
