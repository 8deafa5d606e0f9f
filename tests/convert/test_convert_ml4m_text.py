"""ml-4m's WordPiece text tokenizer and 4M's serialisers: ids, round trips, span masking, errors.

The released ``text_tokenizer_4m_wordpiece_30k.json`` cannot be downloaded here; the tests use a small
tokenizer with the same layout (:func:`ml4m_text_reference.build_wordpiece`). The expected strings are
ml-4m's, worked out by hand, and the expected ids are the tokenizer's own ids of those strings plus
``[EOS]``, as ml-4m's masking computes them. Set ``FOURM_ML4M_TEXT_TOKENIZER`` to the released file to
also check its layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from ml4m_text_reference import CLASSES, build_wordpiece
from tokenizers import Tokenizer

from fourm.cli.convert import main as convert_main
from fourm.convert.ml4m_text import (
    Ml4mTextTokenizer,
    convert_ml4m_text,
    det_to_text,
    metadata_to_chunks,
    palette_to_text,
    text_to_det,
    text_to_metadata,
    text_to_palette,
)
from fourm.errors import FourmError


@pytest.fixture(scope="module")
def fixture_file(tmp_path_factory) -> Path:
    return build_wordpiece(tmp_path_factory.mktemp("ml4m_text") / "text_tokenizer.json")


@pytest.fixture(scope="module")
def tok(fixture_file) -> Ml4mTextTokenizer:
    return Ml4mTextTokenizer.load(fixture_file)


@pytest.fixture(scope="module")
def raw(fixture_file) -> Tokenizer:
    """The tokenizer as ml-4m uses it: Tokenizer.from_file, .encode(text).ids."""
    return Tokenizer.from_file(str(fixture_file))


BOXES = [
    {"boxes": [0.5, 0.5, 0.9, 0.95], "class_name": "baseball bat", "score": 0.9},
    {"box": [0.1, 0.2, 0.3, 0.4], "label": "Dog"},
    {"box": [0.0, 0.0, 1.0, 1.0], "label": "cat", "score": 0.3},  # below ml-4m's 0.6 threshold
]
# ml-4m's strings, worked out by hand: round(v * 999) (0.5 * 999 = 499.5 rounds to the even 500),
# boxes ordered by xmin^2 + ymin^2
BOXES_TEXT = "v0=100 v1=200 v2=300 v3=400 Dog v0=500 v1=500 v2=899 v3=949 baseball bat"
METADATA = {"brightness": 100.3, "original_width": 640, "aesthetic_score": 5.0, "n_humans": 2,
            "watermark_score": 0.5, "occlusion_score": 0.3, "caption_n_words": 5000}
# int(100.3 / 255 * 49) = 19, 640 // 32 = 20, 4.5 <= 5.0 < 5.5 -> 1, 0.5 >= 0.5 -> 1, 0.3 clipped to 0.25 -> 49,
# 5000 clipped to 999
METADATA_CHUNKS = ["v1=10 v0=19", "v1=0 v0=20", "v1=20 v0=1", "v1=5 v0=2", "v1=19 v0=1", "v1=18 v0=49", "v1=3 v0=999"]
PALETTE = [(255, 0, 10), (12.5, 13.5, 200)]
PALETTE_TEXT = "v1=2 v0=255 v0=0 v0=10 v0=12 v0=14 v0=200"  # halves round to even, as Python's round


def test_layout(tok):
    assert (tok.pad_id, tok.unk_id, tok.sos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.num_sentinels == 200 and tok.coord_bins == 1000 and tok.object_classes == list(CLASSES)
    assert tok.sentinel_ids[:3] == [4, 5, 6] and tok.sentinel_id(1) == 5
    assert tok.token_id("v0=0") == 204 and tok.token_id("v3=999") == 4203 and tok.token_id("baseball bat") == 4204
    assert tok.vocab_size > 4208


def test_serialised_strings_are_ml4ms():
    assert det_to_text(BOXES) == BOXES_TEXT
    assert det_to_text(BOXES, score_threshold=None, order="given").startswith("v0=500 v1=500 v2=899 v3=949 baseball bat v0=100")
    assert metadata_to_chunks(METADATA) == METADATA_CHUNKS
    assert metadata_to_chunks(METADATA, order="canonical")[:2] == ["v1=0 v0=20", "v1=3 v0=999"]
    assert palette_to_text(PALETTE) == PALETTE_TEXT
    assert det_to_text([(0.25, 0.75, 0.5, 1.0, "tv")], bins=5) == "v0=1 v1=3 v2=2 v3=4 tv"


def test_ids_are_ml4ms(tok, raw):
    """What ml-4m's masking feeds: tokenizer.encode(text).ids + [EOS] (metadata: per entry)."""
    eos = raw.token_to_id("[EOS]")
    assert tok.sequence_ids("det", BOXES) == raw.encode(BOXES_TEXT).ids + [eos]
    assert raw.encode(BOXES_TEXT).tokens == ["v0=100", "v1=200", "v2=300", "v3=400", "dog",
                                             "v0=500", "v1=500", "v2=899", "v3=949", "baseball bat"]
    assert tok.sequence_ids("metadata", METADATA) == sum((raw.encode(c).ids for c in METADATA_CHUNKS), []) + [eos]
    assert tok.sequence_ids("color_palette", PALETTE) == raw.encode(PALETTE_TEXT).ids + [eos]
    caption = "A photo of a Dog on the sofa."
    assert tok.sequence_ids("caption", caption) == raw.encode(caption).ids + [eos]
    assert tok.text_ids(caption) == raw.encode(caption).ids
    assert tok.sequence_ids("human_poses", "human v0=1 v1=2 v2=3 v3=4") == raw.encode("human v0=1 v1=2 v2=3 v3=4").ids + [eos]


def test_truncation_like_ml4m(tok, raw):
    caption = " ".join(["dog"] * 300)
    ids = tok.sequence_ids("caption", caption)  # 301 ids cut to 256: [EOS] is cut too
    assert len(ids) == 256 and tok.eos_id not in ids
    # metadata keeps whole entries that fit (2 ids each) and [EOS] only if it fits
    assert tok.sequence_ids("metadata", METADATA, max_tokens=5) == sum((raw.encode(c).ids for c in METADATA_CHUNKS[:2]), [])
    assert len(tok.sequence_ids("metadata", METADATA)) == 15


def test_encode_decode_modalities_round_trip(tok):
    ids, lengths = tok.encode_modality("det", [BOXES, []], max_length=24)
    assert ids.shape == (2, 24) and lengths.tolist() == [11, 1] and ids[1, 0] == tok.eos_id and int(ids[1, 1:].sum()) == 0
    boxes = tok.decode_modality("det", ids)
    assert [b["label"] for b in boxes[0]] == ["dog", "baseball bat"] and boxes[1] == []
    torch.testing.assert_close(torch.tensor(boxes[0][1]["box"]), torch.tensor([500, 500, 899, 949]) / 999)
    assert det_to_text(boxes[0], order="given") == BOXES_TEXT.replace("Dog", "dog")
    meta = tok.decode_modality("metadata", tok.encode_modality("metadata", [METADATA])[0])[0]
    assert metadata_to_chunks(meta) == METADATA_CHUNKS  # values decode inside their bins
    assert meta["original_width"] == 640 and meta["n_humans"] == 2 and meta["caption_n_words"] == 999
    pal = tok.decode_modality("color_palette", tok.encode_modality("color_palette", [PALETTE])[0])[0]
    assert pal == [(255, 0, 10), (12, 14, 200)]
    text = tok.decode(tok.encode_modality("caption", ["A photo of a Dog on the sofa."])[0])
    assert text == ["a photo of a dog on the sofa."]


def test_lenient_and_strict_decoding():
    assert text_to_det("v0=1 v1=2 v2=3 v3=4 dog v0=5 v1=6 cat v0=7 v1=8 v2=9 v3=10 tv", strict=False) == [
        {"box": [1 / 999, 2 / 999, 3 / 999, 4 / 999], "label": "dog"},
        {"box": [7 / 999, 8 / 999, 9 / 999, 10 / 999], "label": "tv"},
    ]
    with pytest.raises(FourmError, match="malformed det text"):
        text_to_det("v0=5 v1=6 cat")
    assert text_to_metadata("v1=10 v0=3 v1=99 v0=1 v1=5 v0=2", strict=False) == {
        "brightness": text_to_metadata("v1=10 v0=3")["brightness"], "n_humans": 2}
    with pytest.raises(FourmError, match="unknown metadata key id v1=99"):
        text_to_metadata("v1=99 v0=1")
    assert text_to_palette("v1=2 v0=1 v0=2 v0=3 v0=4", strict=False) == [(1, 2, 3)]
    with pytest.raises(FourmError, match="malformed color_palette"):
        text_to_palette("v1=2 v0=1 v0=2 v0=3")


def test_sentinels_are_dropped_when_decoding(tok):
    ids = [tok.sentinel_id(1)] + tok.sequence_ids("det", BOXES)
    assert tok.decode_modality("det", [ids])[0][0]["label"] == "dog"


def test_span_masking(tok):
    s = tok.sentinel_id
    ids = [300, 301, 302, 303, 304]
    inputs, targets = tok.span_mask(ids, [False, True, True, False, True])
    assert inputs == [300, s(1), 303, s(2)] and targets == [s(1), 301, 302, s(2), 304, s(3)]
    assert tok.merge_spans(inputs, targets) == ids
    assert tok.span_mask(ids, [False] * 5) == (ids, [s(1)])  # a fully given input
    assert tok.span_mask(ids, [True] * 5) == ([s(1)], [s(1), *ids, s(2)])  # generate the whole sequence
    with pytest.raises(FourmError, match="5 ids but 4 mask values"):
        tok.span_mask(ids, [True] * 4)


def test_value_errors(tok):
    with pytest.raises(FourmError, match=r"coordinates must be in \[0, 1\]"):
        det_to_text([{"box": [0, 0, 2, 1], "label": "dog"}])
    with pytest.raises(FourmError, match="label must be a non-empty string"):
        det_to_text([{"box": [0, 0, 1, 1], "label": " "}])
    with pytest.raises(FourmError, match="unknown field"):
        det_to_text([{"box": [0, 0, 1, 1], "label": "dog", "color": "red"}])
    with pytest.raises(FourmError, match="unknown metadata key"):
        metadata_to_chunks({"brightness": 0.5, "mood": 3})
    with pytest.raises(FourmError, match="'n_humans' must be an integer"):
        metadata_to_chunks({"n_humans": 2.5})
    with pytest.raises(FourmError, match=r"channels must be in \[0, 255\]"):
        palette_to_text([(0, 0, 300)])
    with pytest.raises(FourmError, match="unknown ml-4m sequence modality 'bboxes'"):
        tok.sequence_ids("bboxes", [])
    with pytest.raises(FourmError, match="must be given as text"):
        tok.sequence_ids("sam_instance", [1, 2])
    with pytest.raises(FourmError, match="max_length must be a positive integer"):
        tok.encode_modality("caption", ["a"], max_length=0)


def test_value_tokens_beyond_the_vocabulary(tmp_path):
    small = Ml4mTextTokenizer.load(build_wordpiece(tmp_path / "small.json", num_sentinels=4, bins=100, extra=60))
    assert small.coord_bins == 100
    assert small.to_text("det", BOXES) == det_to_text(BOXES, bins=100)
    with pytest.raises(FourmError, match=r"value token v0=255 is not in the vocabulary \(it has v0=0 .. v0=99\)"):
        small.sequence_ids("color_palette", PALETTE)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(specials=("[UNK]", "[PAD]", "[SOS]", "[EOS]")), "[PAD] has id 1, expected 0"),
        (dict(specials=("[PAD]", "[UNK]", "[SOS]")), "missing special token(s) [EOS]"),
        (dict(num_sentinels=2), "sentinels must be [S_0] .. [S_n-1] with n >= 3"),
    ],
)
def test_layout_errors(tmp_path, kwargs, message):
    path = build_wordpiece(tmp_path / "bad.json", **{"num_sentinels": 4, "bins": 10, "extra": 40, **kwargs})
    with pytest.raises(FourmError) as e:
        Ml4mTextTokenizer.load(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unequal_value_families_and_corrupt_files(tmp_path):
    path = build_wordpiece(tmp_path / "t.json", num_sentinels=4, bins=10, extra=40)
    data = json.loads(path.read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "v2=9"]
    data["model"]["vocab"].pop("v2=9")
    (tmp_path / "u.json").write_text(json.dumps(data))
    with pytest.raises(FourmError, match=r"4 families of equal size >= 2, got sizes \[10, 10, 9, 10\]"):
        Ml4mTextTokenizer.load(tmp_path / "u.json")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(FourmError, match="malformed ml-4m text tokenizer"):
        Ml4mTextTokenizer.load(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"model": {"type": "Nope"}}))
    with pytest.raises(FourmError, match="corrupt tokenizer file"):
        Ml4mTextTokenizer.load(tmp_path / "d.json")


def test_convert_round_trip_and_cli(tmp_path, fixture_file, tok, capsys):
    out = tmp_path / "text"
    convert_ml4m_text(fixture_file, out)
    assert (out / "tokenizer.json").read_bytes() == fixture_file.read_bytes()
    loaded = Ml4mTextTokenizer.from_pretrained(out)
    assert loaded.describe() == tok.describe() and loaded.sequence_ids("det", BOXES) == tok.sequence_ids("det", BOXES)
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "coord_bins": 7}))
    with pytest.raises(FourmError, match="config.json does not match tokenizer.json"):
        Ml4mTextTokenizer.from_pretrained(out)
    assert convert_main(["ml4m-tokenizer", str(fixture_file), str(tmp_path / "cli")]) == 0
    assert "text  V=" in capsys.readouterr().out
    assert Ml4mTextTokenizer.load(tmp_path / "cli").describe() == tok.describe()
    saved = tmp_path / "saved"
    tok.save_pretrained(saved)
    assert Ml4mTextTokenizer.from_pretrained(saved).sequence_ids("metadata", METADATA) == tok.sequence_ids("metadata", METADATA)


@pytest.mark.skipif(not os.environ.get("FOURM_ML4M_TEXT_TOKENIZER"), reason="set FOURM_ML4M_TEXT_TOKENIZER to the released file")
def test_released_tokenizer_layout():
    real = Ml4mTextTokenizer.load(os.environ["FOURM_ML4M_TEXT_TOKENIZER"])
    assert (real.vocab_size, real.num_sentinels, real.coord_bins, len(real.object_classes)) == (30000, 200, 1000, 80)
    assert real.sentinel_id(1) == 5 and real.token_id("v0=0") == 204 and real.object_classes[0] == "airplane"
    assert real.tokenize(det_to_text(BOXES))[-1] == "baseball bat"
