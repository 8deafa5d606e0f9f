"""Toy model bundles for tests and demos: untrained toy tokenizers, a small text tokenizer trained on a
few world captions and a tiny random FourM, saved in the layout of ``models/world-default``::

    root = build_toy_bundle(tmp_path / "bundle")            # ~1 s, seeded
    pipe = FourMPipeline.from_pretrained(root)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fourm.codecs import ImageCodec, PatchCodec, SequenceCodec
from fourm.data.world import render_sample
from fourm.errors import FourmError
from fourm.generation.pipeline import FourMPipeline
from fourm.modalities import ModalityRegistry, ModalitySpec, default_registry
from fourm.model.config import FourMConfig, modality_from_spec
from fourm.model.fourm import FourM
from fourm.testing.tokenizers import toy_tokenizer
from tokenizers_zoo.text import TextTokenizer, corpus_from_samples

IMAGE_MODALITIES = ("rgb", "depth", "semseg", "edges")
SEQUENCE_LENGTHS = {"caption": 16, "bboxes": 16, "metadata": 16, "color_palette": 12}
TOY_MODALITIES = IMAGE_MODALITIES + tuple(SEQUENCE_LENGTHS)


def toy_text_tokenizer(num_samples: int = 24, vocab_size: int = 512, seed: int = 0) -> TextTokenizer:
    """A :class:`tokenizers_zoo.text.TextTokenizer` trained on ``num_samples`` world samples."""
    samples = [render_sample(index=i, seed=seed) for i in range(num_samples)]
    return TextTokenizer.train(corpus_from_samples(samples), vocab_size=vocab_size)


def toy_model(registry: ModalityRegistry, seed: int = 0) -> FourM:
    """A random FourM (dim 32, 2 + 2 blocks, 4 heads, seeded) over the modalities of ``registry``."""
    config = FourMConfig.from_dict(
        {"dim": 32, "enc_depth": 2, "dec_depth": 2, "num_heads": 4,
         "modalities": {s.name: modality_from_spec(s) for s in registry.values()}}
    )  # fmt: skip
    torch.manual_seed(seed)
    return FourM(config).eval()


def toy_pipeline(
    image_size: int = 32,
    seed: int = 0,
    modalities: Sequence[str] = TOY_MODALITIES,
    input_only: Sequence[str] = (),
    rgb_pixels: bool = False,
) -> FourMPipeline:
    """An in-memory toy pipeline (see :func:`build_toy_bundle`); ``rgb_pixels`` adds that patch
    modality (8 px patches of the rgb image)."""
    unknown = [m for m in modalities if m not in TOY_MODALITIES]
    if unknown:
        raise FourmError(f"toy bundles hold {', '.join(TOY_MODALITIES)}; got '{unknown[0]}'")
    base = default_registry()
    text = toy_text_tokenizer(seed=seed) if any(m in SEQUENCE_LENGTHS for m in modalities) else None
    specs, codecs = [], {}
    for i, name in enumerate(m for m in TOY_MODALITIES if m in modalities):
        spec = base[name].to_dict()
        if name in IMAGE_MODALITIES:
            tok = toy_tokenizer(name, image_size=image_size, seed=seed + i)
            codecs[name] = ImageCodec(name, tok)
            spec.update(num_tokens=tok.num_tokens, vocab_size=tok.vocab_size, image_size=image_size)
        else:
            codecs[name] = SequenceCodec(name, text, SEQUENCE_LENGTHS[name])
            spec.update(max_length=SEQUENCE_LENGTHS[name], vocab_size=text.vocab_size)
        spec["target"] = name not in input_only
        specs.append(ModalitySpec.from_dict(spec))
    if rgb_pixels:
        spec = ModalitySpec(
            name="rgb_pixels", kind="image", vocab_size=256, num_tokens=(image_size // 8) ** 2, input=True,
            target=False, data_key="rgb", channels=3, value_range=(0.0, 255.0), image_size=image_size, patch_size=8,
        )  # fmt: skip
        spec.validate()
        specs.append(spec)
        codecs["rgb_pixels"] = PatchCodec("rgb_pixels", spec)
    registry = ModalityRegistry(specs)
    model = toy_model(registry, seed)
    with torch.no_grad():  # larger output heads: peaked, seed-sensitive token distributions
        if model.output_weight is not None:
            model.output_weight.mul_(20.0)
    return FourMPipeline(model, codecs, registry)


def build_toy_bundle(
    path: str | Path,
    image_size: int = 32,
    seed: int = 0,
    modalities: Sequence[str] = TOY_MODALITIES,
    input_only: Sequence[str] = (),
    rgb_pixels: bool = False,
) -> Path:
    """Write a toy bundle to ``path`` -> ``path``. Images: ``image_size`` px, 16 tokens of 64 codes;
    sequences: the shared toy text tokenizer, short lengths (:data:`SEQUENCE_LENGTHS`); the model:
    dim 32, 2 + 2 blocks. ``input_only`` modalities are not targets (target: false); ``rgb_pixels``
    adds that patch modality."""
    return toy_pipeline(image_size, seed, modalities, input_only, rgb_pixels).save_pretrained(path)


def extra_modality_yaml(name: str, path: str | Path, **fields) -> str:
    """``configs/modalities/extra/<name>.yaml`` with ``fields`` replaced (e.g. a toy tokenizer's sizes),
    written to ``path``; returns the path as a string (what ``ModalityRegistry.from_files`` takes)."""
    import yaml

    from fourm.resources import CONFIG_ROOT

    spec = yaml.safe_load((CONFIG_ROOT / "modalities" / "extra" / f"{name}.yaml").read_text())
    spec.update(fields)
    Path(path).write_text(yaml.safe_dump(spec))
    return str(path)


def assert_decoded_and_seeded(pipe: FourMPipeline, conditions: dict, name: str, result, num_samples: int) -> None:
    """A generation ``result`` of target ``name``: its values are the codec's decoding of its tokens, the
    default seed repeats the tokens and seed 1 changes them."""
    ids = result.tokens[name]
    np.testing.assert_array_equal(np.stack(result.values[name]), np.stack(pipe.codecs[name].decode(ids)))
    again = pipe.generate(conditions, [name], num_samples=num_samples, progress=False)
    assert torch.equal(again.tokens[name], ids)  # seeded
    other = pipe.generate(conditions, [name], num_samples=num_samples, seed=1, progress=False)
    assert not torch.equal(other.tokens[name], ids)
