"""DynamicImageCodec (fourm.codecs.dynamic): rgb images <-> the [pos][code] rows of a dynamic tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourm.codecs import DynamicImageCodec
from fourm.codecs.dynamic import is_dynamic_tokenizer_dir
from fourm.errors import FourmError
from fourm.testing.tokenizers import toy_config, toy_tokenizer
from tokenizers_zoo.image.tokenizer import build_image_tokenizer

SIZE = 32  # 16 patches of 8x8: vocab 37 + 16 + 64 = 117, rows of 2 * 16 + 1 = 33 ids
VOCAB, LENGTH = 117, 33


def images(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def toy_dynamic_tokenizer(seed: int = 0, calibration: list[np.ndarray] | None = None):
    """A random dynamic tokenizer (token width 16, 64 codes), seeded; its inference threshold set to
    the median keep probability of ``calibration`` (default: random :func:`images`), so images keep
    different numbers of patches."""
    torch.manual_seed(seed)
    tok = build_image_tokenizer(toy_config("rgb_dynamic", "dynamic.token_width=16", image_size=SIZE)).eval()
    calibration = list(images(8, seed=99)) if calibration is None else calibration
    with torch.no_grad():
        _, logits = tok.keep_logits(tok.preprocess(calibration))
        tok.keep_threshold.fill_(float(logits.softmax(dim=-1)[..., 1].median()))
    return tok


@pytest.fixture(scope="module")
def tok():
    return toy_dynamic_tokenizer()


@pytest.fixture(scope="module")
def codec(tok) -> DynamicImageCodec:
    return DynamicImageCodec("rgb_dynamic", tok, precision="fp32")


def test_round_trip_is_the_tokenizers(codec, tok):
    x = images()
    ids = codec.encode(list(x))
    assert (
        ids.shape == (4, LENGTH)
        and ids.dtype == torch.long
        and (codec.length, codec.vocab_size) == (LENGTH, VOCAB)
    )
    with torch.no_grad():
        want = tok.encode(tok.preprocess(list(x)))
    assert torch.equal(ids, want)
    out = codec.decode(ids)
    assert len(out) == 4 and out[0].shape == (SIZE, SIZE, 3) and out[0].dtype == np.uint8
    np.testing.assert_array_equal(np.stack(out), tok.postprocess(tok.decode(want)))
    assert len({int((row == codec.eos).nonzero()[0]) for row in ids}) > 1  # variable lengths


def test_encode_unpadded_stops_at_eos(codec):
    x = images()
    ids = codec.encode(list(x))
    rows, lengths = codec.encode_unpadded(list(x))
    for row, n, full in zip(rows, lengths, ids.tolist()):
        assert row[-1] == codec.eos and codec.eos not in row[:-1] and len(row) == n and n % 2 == 1
        assert full[:n] == row and set(full[n:]) <= {codec.pad}


def test_specials_are_the_text_vocabularys(codec):
    assert (codec.sos, codec.eos, codec.pad, codec.mask_id) == (1, 2, 0, 4)
    assert codec.sentinel_ids == list(range(5, 37))
    assert (
        codec.eos not in codec.banned and {0, 1, 3, 4, 5, 36} <= set(codec.banned) and 37 not in codec.banned
    )


def test_decode_is_lenient(codec, tok):
    ids = codec.encode(list(images(1)))
    n = int((ids[0] == codec.eos).nonzero()[0])
    no_eos = ids.clone()
    no_eos[0, n] = 38  # a stray [pos] without its [code] where [EOS] was
    stray = torch.cat([torch.tensor([[3, 4, 500]]), ids], dim=1)  # [UNK], [MASK], out of the vocabulary
    want = codec.decode(ids)[0]
    np.testing.assert_array_equal(codec.decode(no_eos)[0], want)
    np.testing.assert_array_equal(codec.decode(stray)[0], want)
    assert codec.decode(torch.tensor([[codec.eos]]))[0].shape == (SIZE, SIZE, 3)  # no pair: mask tokens only


def test_images_are_resized_or_refused(tok):
    big = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    assert DynamicImageCodec("rgb_dynamic", tok, precision="fp32").encode([big]).shape == (1, LENGTH)
    strict = DynamicImageCodec("rgb_dynamic", tok, precision="fp32", resize=False)
    with pytest.raises(FourmError) as err:
        strict.encode([big])
    assert "expected an image of shape (32, 32, 3)" in str(err.value) and "\n" not in str(err.value)


def test_wrong_tokenizer_and_prefix_fail_in_one_line(codec, tmp_path):
    with pytest.raises(FourmError) as err:
        DynamicImageCodec("rgb_dynamic", toy_tokenizer("rgb", image_size=SIZE))
    assert "expected a dynamic image tokenizer" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FourmError) as err:
        codec.encode(list(images(1)), prefix=True)
    assert "given as token ids" in str(err.value) and "\n" not in str(err.value)


def test_directory_detection(tok, tmp_path):
    tok.save_pretrained(tmp_path / "dyn")
    toy_tokenizer("rgb", image_size=SIZE).save_pretrained(tmp_path / "grid")
    assert is_dynamic_tokenizer_dir(tmp_path / "dyn")
    assert not is_dynamic_tokenizer_dir(tmp_path / "grid") and not is_dynamic_tokenizer_dir(tmp_path / "none")
