"""The two grids of a VQ-VAE-2 tokenizer as two codecs (fourm.codecs.levels): split, join, decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourm.codecs import ImageCodec, ImageLevelCodec, LevelEncodeCache, decode_levels
from fourm.codecs.levels import check_level_partners, join_levels, level_sizes, split_levels
from fourm.errors import FourmError
from fourm.testing.tokenizers import toy_tokenizer
from tokenizers_zoo.image import vqvae2

SIZE = 32  # toy: bottom grid 4x4 (16 tokens), top grid 2x2 (4 tokens), 64 codes per level


@pytest.fixture(scope="module")
def tok():
    return toy_tokenizer("rgb_vqvae2", image_size=SIZE, seed=0).eval()


@pytest.fixture(scope="module")
def images():
    return list(np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8))


def codecs_of(tok, cache=None) -> dict[str, ImageLevelCodec]:
    return {
        "rgb_top": ImageLevelCodec("rgb_top", tok, "top", autocast=False, cache=cache),
        "rgb_bottom": ImageLevelCodec("rgb_bottom", tok, "bottom", autocast=False, cache=cache),
    }


def test_level_tokens_equal_the_tokenizers_own_quantize_levels(tok, images):
    codecs = codecs_of(tok)
    assert level_sizes(tok) == {"top": 4, "bottom": 16}
    assert (codecs["rgb_top"].length, codecs["rgb_bottom"].length) == (4, 16)
    with torch.no_grad():
        x = tok.preprocess(images)
        top, bottom, _ = tok.quantizer.quantize_levels(tok.encoder(tok.network_input(x)))
    ids_top, ids_bottom = codecs["rgb_top"].encode(images), codecs["rgb_bottom"].encode(images)
    assert ids_top.shape == (3, 4) and ids_bottom.shape == (3, 16) and ids_top.dtype == torch.long
    assert torch.equal(ids_top, top.indices.reshape(3, -1))
    assert torch.equal(ids_bottom, bottom.indices.reshape(3, -1))
    full = ImageCodec("rgb2", tok, autocast=False).encode(images)  # the tokenizer's one-row layout
    assert torch.equal(full, torch.cat([ids_top, ids_bottom], dim=1))


def test_join_of_split_is_the_identity_and_matches_the_tokenizer_helpers(tok):
    codec = codecs_of(tok)["rgb_top"]
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, tok.vocab_size, (5, 20), generator=g)
    levels = codec.split(tokens)
    assert levels["top"].shape == (5, 4) and levels["bottom"].shape == (5, 16)
    assert torch.equal(codec.join(levels), tokens)
    swapped = {"bottom": levels["bottom"], "top": levels["top"]}  # dict order does not matter
    assert torch.equal(join_levels(swapped, codec.sizes), tokens)
    for name, ids in vqvae2.split_levels(tok, tokens).items():  # the tokenizer's own split agrees
        assert torch.equal(ids, levels[name])
    again = split_levels(codec.join(levels), codec.sizes)
    assert all(torch.equal(again[k], levels[k]) for k in levels)


def test_decoding_a_level_needs_the_other_level_and_gives_the_joint_picture(tok, images):
    codecs = codecs_of(tok)
    top, bottom = codecs["rgb_top"].encode(images), codecs["rgb_bottom"].encode(images)
    want = ImageCodec("rgb2", tok).decode(torch.cat([top, bottom], dim=1))
    got_b = codecs["rgb_bottom"].decode(bottom, levels={"top": top})
    got_t = codecs["rgb_top"].decode(top, levels={"bottom": bottom})
    assert len(got_b) == 3 and got_b[0].shape == (SIZE, SIZE, 3) and got_b[0].dtype == np.uint8
    for a, b, c in zip(want, got_b, got_t):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    other = codecs["rgb_bottom"].decode(bottom, levels={"top": (top + 1) % tok.vocab_size})
    assert any(not np.array_equal(a, b) for a, b in zip(want, other))  # the top grid matters
    with pytest.raises(FourmError) as err:
        codecs["rgb_bottom"].decode(bottom)
    assert "needs the top grid" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FourmError, match="expected 4 tokens"):
        codecs["rgb_bottom"].decode(bottom, levels={"top": bottom})


def test_decode_levels_decodes_each_tokenizer_once_and_skips_a_lone_grid(tok, images, monkeypatch):
    codecs = codecs_of(tok)
    tokens = {m: c.encode(images) for m, c in codecs.items()}
    calls = []
    original = ImageLevelCodec.decode_ids
    monkeypatch.setattr(
        ImageLevelCodec, "decode_ids", lambda self, ids, seed=0: calls.append(1) or original(self, ids, seed)
    )
    out = decode_levels(codecs, tokens, ["rgb_top", "rgb_bottom"])
    assert len(calls) == 1 and set(out) == {"rgb_top", "rgb_bottom"}
    assert out["rgb_top"] is out["rgb_bottom"] and len(out["rgb_top"]) == 3
    assert decode_levels(codecs, {"rgb_top": tokens["rgb_top"]}, ["rgb_top"]) == {}
    with pytest.raises(FourmError) as err:
        check_level_partners(codecs, ["rgb_top"], ["rgb_top", "caption"])
    assert "needs 'rgb_bottom'" in str(err.value) and "\n" not in str(err.value)
    check_level_partners(codecs, ["rgb_top"], ["rgb_top", "rgb_bottom"])  # no error


def test_level_codecs_of_one_tokenizer_share_one_encoder_run(tok, images, monkeypatch):
    cache = LevelEncodeCache()
    codecs = codecs_of(tok, cache)
    calls = []
    original = type(tok).encode
    monkeypatch.setattr(type(tok), "encode", lambda self, x: calls.append(len(x)) or original(self, x))
    top, bottom = codecs["rgb_top"].encode(images), codecs["rgb_bottom"].encode(images)
    assert calls == [3]  # the bottom codec reused the top codec's encoder run
    assert torch.equal(
        torch.cat([top, bottom], 1), codecs_of(tok)["rgb_top"].join({"top": top, "bottom": bottom})
    )
    codecs["rgb_bottom"].encode([images[0].copy()])  # other objects: encoded again
    assert calls == [3, 1]


def test_a_one_grid_tokenizer_with_a_token_level_is_a_one_line_error():
    conv = toy_tokenizer("rgb", image_size=SIZE)
    with pytest.raises(FourmError) as err:
        ImageLevelCodec("rgb_top", conv, "top")
    assert "one token grid" in str(err.value) and "'conv'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FourmError, match="unknown token_level 'middle'"):
        ImageLevelCodec("rgb_mid", toy_tokenizer("rgb_vqvae2", image_size=SIZE), "middle")
