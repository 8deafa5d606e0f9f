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
reading, atomic writing) are :mod:`fourm.generation.bundle_layout`'s; this module builds the codecs
(with :class:`fourm.codecs.factory.CodecFactory`, the dispatch pre-tokenization uses too) and checks
them against the model.

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

import math
from pathlib import Path

import torch

from fourm.codecs import Codec, MissingTokenizerCodec, ValueCodec
from fourm.codecs.dynamic import DynamicImageCodec
from fourm.codecs.factory import CodecFactory
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
    "resolve_bundle",
]  # fmt: skip


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

    codecs: dict[str, Codec] = {}
    factory = CodecFactory(device=device, ml4m=True)
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
            codecs[name] = factory.codec(spec, None, mod.length)
            continue
        if spec.box_labels:
            if (spec.num_tokens, spec.vocab_size) != (mod.length, mod.vocab_size):
                raise FourmError(
                    f"modality '{name}': the registry gives a box map of {spec.num_tokens} tokens of vocabulary "
                    f"{spec.vocab_size}, the model {mod.length} of {mod.vocab_size}"
                )
            codecs[name] = factory.codec(spec, None, mod.length)
            continue
        if mod.is_continuous:  # no tokenizer: the raw value is the float vector itself
            codecs[name] = ValueCodec(name, mod.length, mod.value_dim, patch_size=value_patch_size(spec, mod.length))
            continue
        if not spec.tokenizer:
            codecs[name] = MissingTokenizerCodec(name, mod.kind, mod.length, mod.vocab_size, root)
            continue
        path = resolve_tokenizer_path(spec, root)
        codec = factory.codec(spec, path, mod.length)
        if mod.kind == "sequence" and not isinstance(codec, DynamicImageCodec):  # a text vocabulary: at most the model's
            if codec.vocab_size > mod.vocab_size:
                raise FourmError(
                    f"text tokenizer {path} has {codec.vocab_size} tokens, more than the model's '{name}' "
                    f"vocabulary of {mod.vocab_size}"
                )
        elif (codec.length, codec.vocab_size) != (mod.length, mod.vocab_size):
            raise FourmError(
                f"tokenizer {path} gives {codec.length} tokens of vocabulary {codec.vocab_size}, but the model's "
                f"'{name}' has {mod.length} tokens of vocabulary {mod.vocab_size}"
            )
        codecs[name] = codec
    return codecs
