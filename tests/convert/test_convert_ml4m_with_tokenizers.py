"""``fourm-convert ml4m SRC OUT --tokenizer NAME=SRC``: an FM model converted with its tokenizers."""

from __future__ import annotations

import json

import pytest
import torch
from ml4m_reference import ml4m_config
from ml4m_reference import random_state as fm_state
from ml4m_reference import write_checkpoint as write_fm
from ml4m_text_reference import build_wordpiece
from ml4m_vqvae_reference import (
    CASES,
    TINY_VIT,
    random_input,
    random_state,
    reference_encode,
    write_checkpoint,
)

import fourm.convert.ml4m_vqvae as conv
from fourm.cli.convert import main as convert_main
from fourm.convert.ml4m import convert_ml4m
from fourm.convert.ml4m_text import Ml4mTextTokenizer
from fourm.errors import FourmError
from fourm.model import FourM
from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAE

# the FM fixture (ml4m_reference): tok_rgb@32 has 16 tokens of 50 codes, tok_dinov2_global 4 of 30,
# caption / det a vocabulary of 40
RGB = {**CASES["pixels"], "codebook_size": 50}
GLOBAL = {**CASES["global"], "codebook_size": 30}


@pytest.fixture(autouse=True)
def _tiny_vit(monkeypatch):
    monkeypatch.setitem(conv.VIT_PRESETS, "vit_b", TINY_VIT)


@pytest.fixture
def sources(tmp_path):
    cfg = ml4m_config()
    fm = write_fm(tmp_path / "fm", cfg, fm_state(cfg, seed=1))
    rgb = write_checkpoint(tmp_path / "tok_rgb", RGB, random_state(RGB, seed=2))
    glob = write_checkpoint(tmp_path / "tok_glob", GLOBAL, random_state(GLOBAL, seed=3))
    text = build_wordpiece(tmp_path / "text" / "tokenizer.json", num_sentinels=3, bins=2, classes=(), extra=12,
                           corpus=["a dog", "a cat"])
    return {"fm": fm, "tok_rgb@32": rgb, "tok_dinov2_global": glob, "text": text}


def test_convert_with_tokenizers(tmp_path, sources, capsys):
    out = tmp_path / "out"
    args = ["ml4m", str(sources["fm"]), str(out)]
    for name in ("tok_rgb@32", "tok_dinov2_global", "text"):
        args += ["--tokenizer", f"{name}={sources[name]}"]
    assert convert_main(args) == 0
    printed = capsys.readouterr().out
    assert "tokenizer tok_rgb@32: VQVAE (pixels)  V=50  N=16 at 32px -> tokenizers/tok_rgb@32" in printed
    assert "tokenizer text: text" in printed
    mapping = json.loads((out / "ml4m_modalities.json").read_text())
    assert mapping["tokenizers"]["tok_dinov2_global"]["path"] == "tokenizers/tok_dinov2_global"
    assert mapping["tokenizers"]["tok_dinov2_global"]["num_tokens"] == 4
    FourM.from_pretrained(out / "model")  # the bundle's model directory
    rgb = Ml4mVQVAE.from_pretrained(out / "tokenizers" / "tok_rgb@32")
    x = random_input("pixels")
    assert torch.equal(rgb.encode(x), reference_encode(RGB, random_state(RGB, seed=2), x))
    assert Ml4mVQVAE.from_pretrained(out / "tokenizers" / "tok_dinov2_global").num_tokens == 4
    text = Ml4mTextTokenizer.from_pretrained(out / "tokenizers" / "text")
    assert text.vocab_size <= 40 and text.text_ids("a dog") == text.text_ids("A Dog")


@pytest.mark.parametrize(
    "name, source, message",
    [
        ("tok_rgb@32", "tok_dinov2_global", "gives 4 tokens of vocabulary 30 at image size 32, but the model's 'tok_rgb@32' has 16 tokens of vocabulary 50"),
        ("caption", "text", "not an image-token modality of the model"),
        ("tok_rgb@32", "text", "expected an ml-4m VQ-VAE / DiVAE directory, got a text tokenizer"),
        ("text", "tok_rgb@32", "expected ml-4m's WordPiece tokenizer.json"),
    ],
)
def test_tokenizer_mismatches_fail_before_writing(tmp_path, sources, capsys, name, source, message):
    out = tmp_path / "out"
    assert convert_main(["ml4m", str(sources["fm"]), str(out), "--tokenizer", f"{name}={sources[source]}"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_text_tokenizer_larger_than_the_model_vocabulary(tmp_path, sources):
    big = build_wordpiece(tmp_path / "big.json", num_sentinels=4, bins=10, classes=(), extra=10)
    with pytest.raises(FourmError, match=r"more than the vocabulary of \{'caption': 40, 'det': 40\}"):
        convert_ml4m(sources["fm"], tmp_path / "out", tokenizers={"text": big})


def test_malformed_tokenizer_option(tmp_path, sources, capsys):
    assert convert_main(["ml4m", str(sources["fm"]), str(tmp_path / "o"), "--tokenizer", "tok_rgb@32"]) == 2
    assert "malformed --tokenizer 'tok_rgb@32'" in capsys.readouterr().err
