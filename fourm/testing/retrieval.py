"""Toy retrieval setups for tests and demos: a toy pipeline (toy tokenizers, tiny random FourM) that can
also hold a vector modality with a tiny untrained vector tokenizer, and a small world dataset.

    pipe = toy_retrieval_pipeline(vector="caption_embedding")      # rgb, depth, caption + the vector
    root = pipe.save_pretrained(tmp / "bundle")
    data = write_toy_world(tmp / "world", num=16)                  # raw dataset at 32 px, train/val
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from fourm.codecs import VectorCodec
from fourm.data.raw_dataset import write_world_dataset
from fourm.generation.pipeline import FourMPipeline
from fourm.modalities import ModalityRegistry, ModalitySpec
from fourm.testing.bundles import toy_model, toy_pipeline
from tokenizers_zoo.vector import VectorTokenizer, VectorTokenizerConfig


def toy_vector_tokenizer(
    dim: int = 16, num_tokens: int = 4, codebook_size: int = 8, seed: int = 0
) -> VectorTokenizer:
    """An untrained :class:`tokenizers_zoo.vector.VectorTokenizer` of ``num_tokens * codebook_size`` ids."""
    torch.manual_seed(seed)
    cfg = VectorTokenizerConfig(
        input_dim=dim, hidden_dim=32, num_layers=1, num_tokens=num_tokens, codebook_size=codebook_size,
        code_dim=4, kmeans_init=False,
    )  # fmt: skip
    return VectorTokenizer(cfg).eval()


def toy_retrieval_pipeline(
    modalities: Sequence[str] = ("rgb", "depth", "caption"),
    vector: str | None = "caption_embedding",
    image_size: int = 32,
    seed: int = 0,
    rgb_pixels: bool = False,
) -> FourMPipeline:
    """A toy pipeline over ``modalities`` (toy-bundle modalities) plus, unless ``vector`` is None, a
    vector modality ``vector`` (4 tokens of 8 codes, 16-d vectors), and with ``rgb_pixels`` that patch
    modality; FourM dim 32, 2 + 2 blocks."""
    base = toy_pipeline(image_size=image_size, seed=seed, modalities=modalities, rgb_pixels=rgb_pixels)
    if vector is None:
        return base
    tok = toy_vector_tokenizer(seed=seed)
    spec = ModalitySpec(
        name=vector, kind="vector", vocab_size=tok.vocab_size, num_tokens=tok.num_tokens,
        tokenizer=f"tokenizers/{vector}",
    )  # fmt: skip
    registry = ModalityRegistry([*base.registry.values(), spec])
    model = toy_model(registry, seed)
    with torch.no_grad():  # larger weights: peaked, input-sensitive predictions
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return FourMPipeline(model, {**base.codecs, vector: VectorCodec(vector, tok)}, registry)


def write_toy_world(path: str | Path, num: int = 16, size: int = 32, seed: int = 0) -> Path:
    """A raw world dataset of ``num`` samples at ``size`` px, half train and half val."""
    return write_world_dataset(path, num, size=size, seed=seed, val_fraction=0.5, num_workers=0)
