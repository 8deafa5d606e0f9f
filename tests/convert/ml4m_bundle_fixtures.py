"""Test helper: a tiny random ml-4m FM model and tokenizers (ml4m_reference, ml4m_vqvae_reference,
ml4m_text_reference) converted into a fourm bundle with ``fourm.convert.ml4m.convert_ml4m``.

The FM model: ``caption`` (input + target, 12 tokens), ``det`` (target, 10), ``rgb@32`` (pixel
patches), ``tok_rgb@32`` (16 tokens of 50 codes, a pixel VQ-VAE with a decoder),
``tok_dinov2_global`` (4 tokens of 30 codes, a memcodes MLP VQ-VAE), all sharing a 40-id WordPiece
vocabulary with 3 sentinels and 2 value bins per family.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from ml4m_reference import ml4m_config
from ml4m_reference import random_state as fm_state
from ml4m_reference import write_checkpoint as write_fm
from ml4m_text_reference import build_wordpiece
from ml4m_vqvae_reference import CASES, TINY_VIT, random_state, write_checkpoint

import fourm.convert.ml4m_vqvae as conv
from fourm.convert.ml4m import convert_ml4m

RGB = {**CASES["pixels"], "codebook_size": 50}
GLOBAL = {**CASES["global"], "codebook_size": 30}
# a DiVAE for tok_rgb@32 whose diffusion decoder fourm lacks (UViT): the bundle gets its encoder only
# (test_ml4m_divae_bundle.py converts one with a decoder fourm has)
DIVAE = {**RGB, "dec_type": "uvit_b", "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction",
         "num_train_timesteps": 1000}


@contextlib.contextmanager
def tiny_vit() -> Iterator[None]:
    """The converter's vit_b preset shrunk to the test size, while inside."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(conv.VIT_PRESETS, "vit_b", TINY_VIT)
        yield


def write_sources(root: Path) -> dict:
    """The ml-4m checkpoints: {"fm", "cfg", "state", "tok_rgb@32", "tok_dinov2_global", "divae", "text"}."""
    cfg = ml4m_config()
    state = fm_state(cfg, seed=1)
    fm = write_fm(root / "fm", cfg, state)
    rgb = write_checkpoint(root / "tok_rgb", RGB, random_state(RGB, seed=2))
    glob = write_checkpoint(root / "tok_glob", GLOBAL, random_state(GLOBAL, seed=3))
    base = random_state(RGB, seed=4)
    divae_state = {k: v for k, v in base.items() if not k.startswith(("decoder.", "post_quant_proj."))}
    divae_state["decoder.unet.conv_in.weight"] = base["quantize._codebook.embed"].new_zeros(4, 3, 3, 3)
    divae = write_checkpoint(root / "divae", DIVAE, divae_state)
    text = build_wordpiece(root / "text" / "tokenizer.json", num_sentinels=3, bins=2, classes=("dog",), extra=12,
                           corpus=["a dog", "a cat on a mat"])
    return {"fm": fm, "cfg": cfg, "state": state, "tok_rgb@32": rgb, "tok_dinov2_global": glob, "divae": divae,
            "text": text}


def convert(sources: dict, out: Path, names=("text", "tok_rgb@32", "tok_dinov2_global"), **override) -> Path:
    """``convert_ml4m`` of the FM model with the tokenizers ``names`` (``override``: name -> source)."""
    tokenizers = {name: sources[name] for name in names}
    tokenizers.update(override)
    with tiny_vit():
        convert_ml4m(sources["fm"], out, tokenizers=tokenizers)
    return out
