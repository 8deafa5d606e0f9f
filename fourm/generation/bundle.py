"""Model bundles: a FourM model with the tokenizers of its modalities, in one directory::

    models/world-default/
        model/                  FourM.save_pretrained (config.json + model.safetensors)
        tokenizers/rgb/ ...     one ImageTokenizer directory per image modality
        tokenizers/text/        the TextTokenizer shared by the sequence modalities
        modalities.json         the modality registry, tokenizer paths relative to the bundle (optional)
        generation.json         the bundle's own generation defaults per target (optional), e.g.
                                {"targets": {"rgb": {"guidance_scale": 3.0}, "bboxes": {"top_p": 0.8}}}

Without ``modalities.json`` (or ``registry.json``) the repository's ``configs/modalities/*.yaml`` are
used, their tokenizer paths resolved against the bundle directory. The files themselves (paths,
reading, atomic writing) are :mod:`fourm.generation.bundle_layout`'s; this module builds the codecs.

A modality whose registry entry has ``tokenizer: null`` loads without a tokenizer
(:class:`~fourm.codecs.MissingTokenizerCodec`: its token ids work, raw values and decoding
fail with one line). Tokenizer directories are read by their ``config.json`` ``format``: fourm's own
(``ImageTokenizer``, ``TextTokenizer``, ``VectorTokenizer``), or those converted from apple/ml-4m
(``ml4m-vqvae``, ``ml4m-wordpiece``; :mod:`fourm.convert.ml4m`, which writes whole bundles); an
``ml4m-vqvae`` directory with a ``diffusion_decoder/`` is an ml-4m DiVAE
(:class:`~tokenizers_zoo.image.ml4m_divae.Ml4mDiVAE`), which decodes by diffusion. Registry entries
may carry ml-4m's modality names (``rgb@224``, ``tok_semseg@224``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from fourm.codecs import (
    BoxMapCodec,
    Codec,
    ImageCodec,
    MissingTokenizerCodec,
    Ml4mImageCodec,
    Ml4mSequenceCodec,
    PatchCodec,
    SequenceCodec,
    ValueCodec,
    VectorCodec,
    image_codec,
)
from fourm.codecs.dynamic import DynamicImageCodec, is_image_tokenizer_dir
from fourm.codecs.video import VideoCodec, is_video_tokenizer_dir, load_video_tokenizer
from fourm.errors import FourmError
from fourm.generation.bundle_layout import (  # the bundle's files; re-exported here, where they used to live
    GENERATION_FILE,
    ML4M_MAP,
    ML4M_NAME,
    MODEL_DIR,
    REGISTRY_FILE,
    REGISTRY_FILES,
    load_generation_defaults,
    load_registry,
    modality_spec,
    registry_from_dict,
    resolve_bundle,
)
from fourm.modalities import ModalityRegistry
from fourm.model.config import FourMConfig
from fourm.resources import DEFAULT_BUNDLE

__all__ = [
    "DEFAULT_BUNDLE", "GENERATION_FILE", "ML4M_MAP", "ML4M_NAME", "MODEL_DIR", "REGISTRY_FILE", "REGISTRY_FILES",
    "load_codecs", "load_generation_defaults", "load_registry", "modality_spec", "registry_from_dict",
    "resolve_bundle", "tokenizer_format",
]  # fmt: skip


def tokenizer_format(path: Path) -> str | None:
    """The ``format`` field of a tokenizer directory's ``config.json`` (None without one)."""
    try:
        data = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data.get("format") if isinstance(data, dict) and isinstance(data.get("format"), str) else None


def value_patch_size(spec, length: int) -> int:
    """Side of the pixel patches of a continuous modality whose registry entry declares an RGB image
    (``image_size`` and ``channels: 3``), else 0 (a plain vector): the layout is the registry's, not
    guessed from the token shape."""
    if not spec.image_size or spec.channels != 3:
        return 0
    return spec.image_size // max(1, math.isqrt(length))


def load_codecs(
    registry: ModalityRegistry, config: FourMConfig, root: str | Path, device: torch.device | str = "cpu"
) -> dict[str, Codec]:
    """One codec per model modality, tokenizers loaded from the registry's paths (relative to ``root``);
    FourmError if a tokenizer directory is missing or does not fit the model. A modality whose entry
    has no tokenizer gets a :class:`MissingTokenizerCodec`."""
    from fourm.data.pretokenize import resolve_tokenizer_path
    from tokenizers_zoo.image import ImageTokenizer
    from tokenizers_zoo.image.ml4m_divae import Ml4mDiVAE, is_divae_dir
    from tokenizers_zoo.image.ml4m_vqvae import FORMAT as ML4M_VQVAE
    from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAE
    from tokenizers_zoo.text import TextTokenizer
    from tokenizers_zoo.text.ml4m_wordpiece import FORMAT as ML4M_TEXT
    from tokenizers_zoo.text.ml4m_wordpiece import Ml4mTextTokenizer
    from tokenizers_zoo.vector import VectorTokenizer

    codecs: dict[str, Codec] = {}
    texts: dict[Path, Any] = {}
    levels: dict[Path, Any] = {}  # two-level tokenizers: the level modalities (rgb_top, rgb_bottom) share one
    for name, mod in config.modalities.items():
        if name not in registry:
            raise FourmError(f"the model's modality '{name}' is not in the registry (known: {', '.join(registry)})")
        spec = registry[name]
        if spec.kind != mod.kind:
            raise FourmError(f"modality '{name}' is a {mod.kind} in the model but a {spec.kind} in the registry")
        if mod.is_patches or spec.patch_size:
            if (spec.patch_dim or 0, spec.num_tokens) != (mod.patch_dim, mod.length):
                raise FourmError(
                    f"modality '{name}': the registry gives {spec.num_tokens} patches of {spec.patch_dim} values, "
                    f"the model {mod.length} patches of {mod.patch_dim}"
                )
            codecs[name] = PatchCodec(name, spec)
            continue
        if spec.box_labels:
            if (spec.num_tokens, spec.vocab_size) != (mod.length, mod.vocab_size):
                raise FourmError(
                    f"modality '{name}': the registry gives a box map of {spec.num_tokens} tokens of vocabulary "
                    f"{spec.vocab_size}, the model {mod.length} of {mod.vocab_size}"
                )
            codecs[name] = BoxMapCodec(name, spec)
            continue
        if mod.is_continuous:  # no tokenizer: the raw value is the float vector itself
            codecs[name] = ValueCodec(name, mod.length, mod.value_dim, patch_size=value_patch_size(spec, mod.length))
            continue
        if not spec.tokenizer:
            codecs[name] = MissingTokenizerCodec(name, mod.kind, mod.length, mod.vocab_size, root)
            continue
        path = resolve_tokenizer_path(spec, root)
        fmt = tokenizer_format(path)
        if mod.kind == "image" and fmt == ML4M_VQVAE:
            ml4m_cls = Ml4mDiVAE if is_divae_dir(path) else Ml4mVQVAE  # a DiVAE: the encoder dir + diffusion_decoder/
            codec: Codec = Ml4mImageCodec(name, ml4m_cls.from_pretrained(path, device=device))
        elif mod.kind == "image" and spec.token_level is not None:
            if path not in levels:
                levels[path] = ImageTokenizer.from_pretrained(path, device=device)
            codec = image_codec(name, levels[path], spec.token_level)
        elif mod.kind == "image":
            codec = ImageCodec(name, ImageTokenizer.from_pretrained(path, device=device))
        elif mod.kind == "sequence" and is_image_tokenizer_dir(path):  # rgb as [pos][code] pairs (fourm.codecs.dynamic)
            codec = DynamicImageCodec(name, ImageTokenizer.from_pretrained(path, device=device))
        elif mod.kind == "sequence":
            ml4m = fmt == ML4M_TEXT
            if path not in texts:
                texts[path] = Ml4mTextTokenizer.from_pretrained(path) if ml4m else TextTokenizer.from_pretrained(path)
            codec = Ml4mSequenceCodec(name, texts[path], mod.length) if ml4m else SequenceCodec(name, texts[path], mod.length)
            if codec.vocab_size > mod.vocab_size:
                raise FourmError(
                    f"text tokenizer {path} has {codec.vocab_size} tokens, more than the model's '{name}' "
                    f"vocabulary of {mod.vocab_size}"
                )
            codecs[name] = codec
            continue
        elif is_video_tokenizer_dir(path):  # clips of a joint image-video tokenizer (fourm.codecs.video)
            codec = VideoCodec(name, load_video_tokenizer(path, device=device))
        else:
            codec = VectorCodec(name, VectorTokenizer.from_pretrained(path, map_location=device))
        if (codec.length, codec.vocab_size) != (mod.length, mod.vocab_size):
            raise FourmError(
                f"tokenizer {path} gives {codec.length} tokens of vocabulary {codec.vocab_size}, but the model's "
                f"'{name}' has {mod.length} tokens of vocabulary {mod.vocab_size}"
            )
        codecs[name] = codec
    return codecs
