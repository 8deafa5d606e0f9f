"""Read the released FM checkpoints of apple/ml-4m (``EPFL-VILAB/4M-7_*``, ``4M-21_*``) as fourm models.

An ml-4m model directory holds ``config.json`` (the keyword arguments of ml-4m's ``FM`` class:
``domains_in`` / ``domains_out``, ``dim``, ``encoder_depth``, ...) and ``model.safetensors`` (its
state dict: ``encoder_embeddings.<modality>.*``, ``encoder.<i>.*``, ``decoder_proj_context``,
``decoder.<i>.*``, ``decoder_embeddings.<modality>.*``, ...). :func:`ml4m_to_fourm` maps both onto a
:class:`~fourm.model.FourM` with the ml-4m options switched on (SwiGLU width ``int(2 * int(ratio *
dim) / 3)``, projected decoder context plus per-block context norm, shared modality embeddings when
the checkpoint shares them, learned position tables where the checkpoint has them). The resulting
model computes what the ml-4m model computes; docs/ml4m.md lists the differences that remain in
how inputs are prepared (pixel normalisation is folded into the patch projection, decoder
sequences start with their first sentinel instead of [SOS]).

Usage::

    model, info = load_ml4m("checkpoints/4M-7_B_CC12M")         # FourM, conversion report
    convert_ml4m("checkpoints/4M-7_B_CC12M", "models/4m7b")     # -> a fourm bundle (model/, modalities.json, ...)
    convert_ml4m(src, out, tokenizers={"text": "text_tokenizer_4m_wordpiece_30k.json",
                                       "tok_semseg@224": "checkpoints/4M_tokenizers_semseg_4k_224-448"})
    FourMPipeline.from_pretrained("models/4m7b")                 # generation with its tokenizers
    FourM.from_pretrained("checkpoints/4M-7_B_CC12M")           # detects the ml-4m config

The checkpoint itself is read by :mod:`fourm.model.ml4m` (model layer: :meth:`FourM.from_pretrained`
uses it on an ml-4m directory); its names are re-exported here. The tokenizers are converted by
:mod:`fourm.convert.ml4m_text` (WordPiece vocabulary and 4M's serialisers),
:mod:`fourm.convert.ml4m_vqvae` (VQ-VAE image / feature tokenizers) and :mod:`fourm.convert.ml4m_divae`
(DiVAE diffusion decoders).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from fourm.convert.ml4m_divae import has_unet_decoder, is_ml4m_divae_source, load_ml4m_divae_tokenizer
from fourm.convert.ml4m_vqvae import _is_diffusion, load_ml4m_vqvae, read_ml4m_tokenizer_config
from fourm.errors import FourmError
from fourm.generation.bundle_layout import (
    ML4M_MAP,
    MODEL_DIR,
    is_bundle,
    registry_from_dict,
    tokenizer_ref,
    write_bundle,
    write_generation_defaults,
    write_json,
    write_registry,
)
from fourm.model.files import CONFIG_NAME, WEIGHTS_NAME
from fourm.model.fourm import FourM
from fourm.model.ml4m import (
    IGNORED_KEYS,
    IMAGE_PATCH_SIZES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    KNOWN_KEYS,
    OTHER_KEYS,
    REQUIRED_KEYS,
    SEQUENCE_LENGTHS,
    SUPPORTED_VALUES,
    UNSUPPORTED,
    ConversionInfo,
    ModalityInfo,
    _image_side,
    _Weights,
    check_ml4m_config,
    is_ml4m_dir,
    load_converted_state,
    ml4m_to_fourm,
    read_ml4m,
    read_ml4m_config,
    read_ml4m_weights,
    resolve_source,
)

# the checkpoint reading is the model layer's (fourm.model.ml4m, which FourM.from_pretrained uses); its
# names stay importable from here
__all__ = [
    "ConversionInfo",
    "IGNORED_KEYS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_PATCH_SIZES",
    "KNOWN_KEYS",
    "MODALITY_MAP_NAME",
    "ModalityInfo",
    "OTHER_KEYS",
    "REQUIRED_KEYS",
    "SEQUENCE_LENGTHS",
    "SUPPORTED_VALUES",
    "TEXT_TOKENIZER",
    "UNSUPPORTED",
    "_Weights",
    "check_ml4m_config",
    "convert_ml4m",
    "is_converted_bundle",
    "is_ml4m_dir",
    "is_text_tokenizer_source",
    "load_converted_state",
    "load_ml4m",
    "load_ml4m_tokenizer",
    "load_ml4m_tokenizer_for",
    "ml4m_generation_defaults",
    "ml4m_registry",
    "ml4m_to_fourm",
    "read_ml4m",
    "read_ml4m_config",
    "read_ml4m_weights",
    "resolve_source",
]

MODALITY_MAP_NAME = ML4M_MAP  # the conversion record a converted bundle holds


def load_ml4m(
    src: str | Path, keep: Iterable[str] = (), device: str | torch.device | None = None
) -> tuple[FourM, ConversionInfo]:
    """An ml-4m FM directory (or hub id, online only) -> (FourM in eval mode, ConversionInfo)."""
    path, fourm_config, state, info = read_ml4m(src, keep)
    model = load_converted_state(FourM(fourm_config), state, path)
    return (model.to(device) if device is not None else model), info


def convert_ml4m(
    src: str | Path, out: str | Path, keep: Iterable[str] = (), tokenizers: Mapping[str, str | Path] | None = None
) -> ConversionInfo:
    """Convert ml-4m model ``src`` into the fourm model bundle ``out`` (written atomically)::

        out/model/                FourM.save_pretrained (fp32)
        out/tokenizers/<name>/    the converted tokenizers (``text``: the one of every sequence modality)
        out/modalities.json       the registry of the model's modalities under ml-4m's names
                                  (tokenizer: null where none was given)
        out/generation.json       ml-4m's sampling settings per target (:func:`ml4m_generation_defaults`)
        out/ml4m_modalities.json  the conversion record: modality map, dropped modalities, tokenizers

    so that ``FourMPipeline.from_pretrained(out)`` / ``generate.py --model out`` run it.

    ``tokenizers``: {name: ml-4m tokenizer source}: ``text`` (the WordPiece ``tokenizer.json`` shared
    by the sequence modalities) or an image-token modality of the model (``tok_semseg@224``: a VQ-VAE,
    or a DiVAE, converted with its diffusion decoder; a UViT / ControlNet one encoder only), each
    checked against the model (vocabulary, token count at the modality's image size) before anything
    is written."""
    path = resolve_source(src)
    config = read_ml4m_config(path)
    model, info = load_ml4m(path, keep)
    converted = [(name, *load_ml4m_tokenizer_for(info, name, tok_src, config)) for name, tok_src in (tokenizers or {}).items()]
    for name, _, entry in converted:
        info.tokenizers[name] = {"path": tokenizer_ref(name), **entry}
    registry = ml4m_registry(info, config)
    registry_from_dict(registry)  # every entry is a valid registry entry (a bug of this module otherwise)
    with write_bundle(out) as tmp:
        model.save_pretrained(tmp / MODEL_DIR)
        for name, tok, _ in converted:
            tok.save_pretrained(tmp / tokenizer_ref(name))
        write_registry(tmp, registry)
        write_generation_defaults(tmp, ml4m_generation_defaults(info))
        write_json(tmp, MODALITY_MAP_NAME, info.to_dict())
    return info


def is_converted_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a bundle written by :func:`convert_ml4m` (or a model directory of its
    earlier layout: config.json + model.safetensors + the modality map)."""
    path = Path(path)
    bundle = is_bundle(path)
    return (path / MODALITY_MAP_NAME).is_file() and (bundle or (path / CONFIG_NAME).is_file())


def ml4m_registry(info: ConversionInfo, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The bundle registry (``modalities.json``) of a converted model: one entry per modality under
    ml-4m's name, with its tokenizer's bundle path (null when not converted).

    ``rgb@<size>`` is a patch modality (raw image -> 8-bit pixel patches, no tokenizer) reading the
    raw ``rgb`` image, as does ``tok_rgb@<size>``: an image given for ``tok_rgb@<size>`` is read as
    ``rgb@<size>`` patches (:meth:`FourMPipeline.with_patch_conditions`)."""
    text = info.tokenizers.get(TEXT_TOKENIZER, {}).get("path")
    out: dict[str, dict[str, Any]] = {}
    for name, m in info.modalities.items():
        base = name.split("@")[0]
        entry: dict[str, Any] = {"kind": "sequence" if m.kind == "sequence" else "image", "vocab_size": m.vocab_size,
                                 "input": m.input, "target": m.target}
        if m.kind == "patches":
            side = math.isqrt(m.length) * m.patch_size
            entry.update(num_tokens=m.length, data_key="rgb", channels=m.channels, image_size=side,
                         patch_size=m.patch_size, value_range=[0, 255])
        elif m.kind == "image":
            entry.update(tokenizer=info.tokenizers.get(name, {}).get("path"), num_tokens=m.length,
                         image_size=info.tokenizers.get(name, {}).get("image_size") or _image_side(name, config))
            if base == "tok_rgb":
                entry["data_key"] = "rgb"
        else:
            entry.update(tokenizer=text, max_length=m.length)
        out[name] = entry
    return out


# ml-4m's sampling settings (the defaults of its demo sampler for generating from a caption or other
# non-image conditions), per modality base name: image tokens ROAR with guidance, sequences
# autoregressive at low temperature; top-p 0.8 throughout. ml-4m's "onex" temperature decay (1 / sqrt)
# is not one of fourm's schedules: a linear decay between the same temperatures stands in for it.
_ROAR_DECAY = {"scheme": "roar", "temperature_schedule": "linear", "temperature_end": 0.5, "top_p": 0.8}
_ROAR_FLAT = {"scheme": "roar", "temperature_schedule": "constant", "top_p": 0.8}
ML4M_GENERATION_PRESETS: dict[str, dict[str, Any]] = {
    "tok_clip": {**_ROAR_DECAY, "steps": 50, "temperature": 5.0, "guidance_scale": 3.0},
    "tok_rgb": {**_ROAR_DECAY, "steps": 25, "temperature": 3.0, "guidance_scale": 2.0},
    "tok_dinov2": {**_ROAR_FLAT, "steps": 8, "temperature": 0.01, "guidance_scale": 2.0},
    "tok_imagebind": {**_ROAR_FLAT, "steps": 8, "temperature": 0.01, "guidance_scale": 2.0},
    "tok_dinov2_global": {**_ROAR_FLAT, "steps": 8, "temperature": 0.01, "guidance_scale": 2.0},
    "tok_imagebind_global": {**_ROAR_FLAT, "steps": 8, "temperature": 0.01, "guidance_scale": 2.0},
    "tok_*": {**_ROAR_DECAY, "steps": 8, "temperature": 3.0, "guidance_scale": 2.0},  # depth, normal, semseg, edges
    "caption": {"temperature": 0.3, "top_p": 0.8},
    "det": {"temperature": 0.3, "top_p": 0.8},
    "human_poses": {"temperature": 0.1, "top_p": 0.8},
    "sam_instance": {"temperature": 0.01, "top_p": 0.8},
    "color_palette": {"temperature": 0.1, "top_p": 0.8},
    "metadata": {"temperature": 0.1, "top_p": 0.8},
}


def ml4m_generation_defaults(info: ConversionInfo) -> dict[str, dict[str, Any]]:
    """``generation.json`` targets of a converted model: :data:`ML4M_GENERATION_PRESETS` for each of
    its target modalities (a target-only image modality decodes in one step: with ROAR / MaskGIT a
    fixed token is fed back to the encoder)."""
    out: dict[str, dict[str, Any]] = {}
    for name, m in info.modalities.items():
        if not m.target:
            continue
        base = name.split("@")[0]
        preset = ML4M_GENERATION_PRESETS.get(base) or (ML4M_GENERATION_PRESETS["tok_*"] if m.kind == "image" else None)
        if preset is None:
            continue
        fields = dict(preset)
        if m.kind == "image" and not m.input:
            fields["steps"] = 1
        out[name] = fields
    return out


# ------------------------------------------------------------------------------ tokenizers
TEXT_TOKENIZER = "text"


def is_text_tokenizer_source(src: str | Path) -> bool:
    """Whether ``src`` is ml-4m's text tokenizer: a ``.json`` file, a converted text directory, or a
    directory holding ``tokenizer.json`` but no model weights (else: a VQ-VAE source)."""
    path = Path(src).expanduser()
    if path.is_file():
        return True
    if not path.is_dir():
        return False
    if (path / CONFIG_NAME).is_file():
        from fourm.convert.ml4m_text import FORMAT

        try:
            data = json.loads((path / CONFIG_NAME).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("format") == FORMAT
    return (path / "tokenizer.json").is_file() and not (path / WEIGHTS_NAME).is_file()


def load_ml4m_tokenizer(
    src: str | Path, image_size: int | None = None, encoder_only: bool = False, domain: str = ""
) -> tuple[Any, dict[str, Any]]:
    """An ml-4m tokenizer -> (fourm tokenizer object with ``save_pretrained``, description).

    ``src``: the WordPiece ``tokenizer.json`` (-> :class:`~fourm.convert.ml4m_text.Ml4mTextTokenizer`),
    a DiVAE directory / hub id (-> :class:`~tokenizers_zoo.image.ml4m_divae.Ml4mDiVAE`, diffusion
    decoder included; with ``encoder_only`` an encoder-only Ml4mVQVAE) or a VQ-VAE directory / hub
    id (-> :class:`~tokenizers_zoo.image.ml4m_vqvae.Ml4mVQVAE`)."""
    if is_text_tokenizer_source(src):
        from fourm.convert.ml4m_text import Ml4mTextTokenizer

        text = Ml4mTextTokenizer.load(src)
        return text, {"kind": "text", "vocab_size": text.vocab_size, "num_sentinels": text.num_sentinels,
                      "coord_bins": text.coord_bins}
    src = resolve_source(src)  # a hub id: its downloaded snapshot (online only)
    if not encoder_only and is_ml4m_divae_source(src):
        return load_ml4m_divae_tokenizer(src, image_size=image_size, domain=domain)
    tok, vq = load_ml4m_vqvae(src, image_size=image_size, encoder_only=encoder_only, domain=domain)
    entry = {"kind": vq.kind, "input": vq.config.input, "vocab_size": tok.vocab_size, "num_tokens": tok.num_tokens,
             "image_size": vq.config.image_size, "encoder_only": vq.encoder_only}
    if vq.ignored:
        entry["left_out"] = vq.ignored
    return tok, entry


def load_ml4m_tokenizer_for(
    info: ConversionInfo, name: str, src: str | Path, ml4m_config: Mapping[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The tokenizer ``src`` of modality ``name`` of a converted model (``text``: the shared text
    tokenizer), converted and checked against the model (``ml4m_config``: its ml-4m config, for the
    image size of modalities without ``@<size>``): FourmError naming the mismatch."""
    where = f"tokenizer '{name}' ({src})"
    if name == TEXT_TOKENIZER:
        sequences = {k: m for k, m in info.modalities.items() if m.kind == "sequence"}
        if not sequences:
            raise FourmError(f"{where}: the model has no sequence modality to use a text tokenizer")
        if not is_text_tokenizer_source(src):
            raise FourmError(f"{where}: expected ml-4m's WordPiece tokenizer.json (a file), got a directory of model weights")
        tok, entry = load_ml4m_tokenizer(src)
        small = {k: m.vocab_size for k, m in sequences.items() if m.vocab_size < tok.vocab_size}
        if small:
            raise FourmError(f"{where}: {tok.vocab_size} tokens, more than the vocabulary of {small}")
        return tok, entry
    if name not in info.modalities or info.modalities[name].kind != "image":
        known = [k for k, m in info.modalities.items() if m.kind == "image"]
        raise FourmError(f"{where}: not an image-token modality of the model (known: {', '.join(known + [TEXT_TOKENIZER])})")
    if is_text_tokenizer_source(src):
        raise FourmError(f"{where}: expected an ml-4m VQ-VAE / DiVAE directory, got a text tokenizer")
    path = resolve_source(src)
    raw = read_ml4m_tokenizer_config(path)
    side = _image_side(name, ml4m_config or {})
    # a DiVAE converts with its diffusion decoder; other diffusion decoders (UViT, ControlNet) encoder only
    encoder_only = _is_diffusion(raw, {}) and not has_unet_decoder(raw)
    tok, entry = load_ml4m_tokenizer(path, image_size=side, encoder_only=encoder_only, domain=name)
    m = info.modalities[name]
    if (tok.vocab_size, tok.num_tokens) != (m.vocab_size, m.length):
        raise FourmError(f"{where}: gives {tok.num_tokens} tokens of vocabulary {tok.vocab_size} at image size {side}, "
                         f"but the model's '{name}' has {m.length} tokens of vocabulary {m.vocab_size}")
    return tok, entry
