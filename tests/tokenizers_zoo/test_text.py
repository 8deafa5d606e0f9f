"""TextTokenizer: structured tokens never split, caption round trip, padding / truncation / [EOS],
modality helpers, deterministic training, save/load."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fourm.errors import FourmError
from tokenizers_zoo.text import (
    StructuredVocabConfig,
    TextTokenizer,
    corpus_from_samples,
    quantize_bboxes,
    quantize_metadata,
    quantize_palette,
    structured_tokens,
)

COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "star"]
CAPTIONS = [
    f"A {c} {s} is {where} the {c2} {s2}."
    for c, c2 in zip(COLORS, COLORS[1:] + COLORS[:1])
    for s, s2 in zip(SHAPES, SHAPES[1:] + SHAPES[:1])
    for where in ("left of", "above", "next to")
] + ["There's nothing here, just a dark background!", "two circles and 3 squares"]
VOCAB_SIZE = 600


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.train(CAPTIONS + SHAPES + COLORS, vocab_size=VOCAB_SIZE)


def test_special_ids(tok):
    assert tok.pad_id == 0
    special = [tok.pad_id, tok.sos_id, tok.eos_id, tok.unk_id, tok.mask_id, *tok.sentinel_ids]
    assert len(set(special)) == len(special) == 5 + 32
    assert [tok.id_to_token(i) for i in special[:5]] == ["[PAD]", "[SOS]", "[EOS]", "[UNK]", "[MASK]"]
    assert tok.sentinel_ids == [tok.token_id(f"[S_{i}]") for i in range(32)]
    assert tok.vocab_size <= VOCAB_SIZE and len(tok) == tok.vocab_size


def test_structured_tokens_are_single_ids_and_decode_back(tok):
    tokens = structured_tokens(StructuredVocabConfig())
    for expected_id, token in enumerate(tokens):
        assert tok.tokenize(token) == [token]
        assert tok.token_id(token) == expected_id
    ids, lengths = tok.encode(
        ["circle[x=3][y=63] [S_5]  [meta:brightness][m=0]"], max_length=16, add_eos=False
    )
    structured = [tok.token_id(t) for t in ("[x=3]", "[y=63]", "[S_5]", "[meta:brightness]", "[m=0]")]
    assert ids[0, 1 : int(lengths[0])].tolist() == structured  # "circle" is one word piece, then tokens
    assert tok.decode(ids) == ["circle [x=3] [y=63] [S_5] [meta:brightness] [m=0]"]
    # case matters: an upper-case look-alike is not a structured token
    assert tok.token_id("[x=3]") not in tok.encode(["[X=3]"], max_length=16)[0][0].tolist()


def test_caption_round_trip_lower_cases(tok):
    texts = CAPTIONS[:5] + [
        "A PURPLE star is above the Green circle.",
        "There's nothing here, just a dark background!",
    ]
    ids, lengths = tok.encode(texts, max_length=32)
    assert tok.decode(ids) == [t.lower() for t in texts]
    # a word never seen in training still decodes (spelt from character pieces)
    assert tok.decode(tok.encode(["zebra quokka"], max_length=32)[0]) == ["zebra quokka"]


def test_padding_eos_sos_and_truncation(tok):
    texts = ["a red circle", "a blue square is above the green triangle"]
    n = [len(tok.tokenize(t)) for t in texts]
    ids, lengths = tok.encode(texts, max_length=n[1] + 4, add_sos=True)
    assert ids.shape == (2, n[1] + 4) and ids.dtype == torch.long
    assert lengths.tolist() == [n[0] + 2, n[1] + 2]
    for row, length in zip(ids, lengths.tolist()):
        assert row[0] == tok.sos_id and row[length - 1] == tok.eos_id
        assert (row[length:] == tok.pad_id).all()
        assert (row[1 : length - 1] != tok.pad_id).all()
    no_eos, lengths_no_eos = tok.encode(texts, max_length=n[1] + 4, add_eos=False)
    assert lengths_no_eos.tolist() == n and tok.eos_id not in no_eos.tolist()[0]

    with pytest.raises(FourmError, match="truncation=True"):
        tok.encode(texts, max_length=n[1])
    cut, cut_lengths = tok.encode(texts, max_length=6, truncation=True)
    assert cut_lengths.tolist() == [min(n[0] + 1, 6), 6]
    assert cut[1, 5] == tok.eos_id and cut[1, :5].tolist() == tok.encode(texts[1:], 40)[0][0, :5].tolist()
    assert tok.decode(cut)[1] == "a blue square is above"


def test_decode_stops_at_eos_and_skips_pad(tok):
    body = tok.encode(["a red star"], max_length=10)[0][0].tolist()  # ... [EOS] [PAD] ...
    garbage = tok.encode(["the green circle"], max_length=10, add_eos=False)[0][0].tolist()
    row = [tok.pad_id, tok.sos_id] + body[: body.index(tok.eos_id) + 1] + garbage
    assert tok.decode([row]) == ["a red star"]
    assert tok.decode(torch.tensor(row)) == ["a red star"]
    with pytest.raises(FourmError, match="out of range"):
        tok.decode([[5, tok.vocab_size]])


def test_modalities_round_trip(tok):
    cfg = tok.config.structured
    boxes = [
        [{"label": "Red Circle", "box": [0.1, 0.2, 0.5, 0.55]}, {"label": "star", "box": [0, 0, 1, 1]}],
        [],
    ]
    ids, _ = tok.encode_modality("bboxes", boxes, max_length=24)
    assert tok.decode_modality("bboxes", ids) == [quantize_bboxes(b, cfg.coord_bins) for b in boxes]

    palettes = [[[255, 0, 0], [12, 100, 200]], [[0, 0, 0]]]
    ids, _ = tok.encode_modality("color_palette", palettes, max_length=16)
    assert tok.decode_modality("color_palette", ids) == [
        quantize_palette(p, cfg.color_levels) for p in palettes
    ]

    metas = [{"brightness": 0.42, "object_count": 3, "dominant_color": "Dark Blue"}, {}]
    ids, lengths = tok.encode_modality("metadata", metas, max_length=16)
    assert lengths[1] == 1  # only [EOS]
    assert tok.decode_modality("metadata", ids) == [quantize_metadata(m, cfg.metadata) for m in metas]

    captions = ["A red circle."]
    ids, _ = tok.encode_modality("caption", captions, max_length=16)
    assert tok.decode_modality("caption", ids) == ["a red circle."]

    with pytest.raises(FourmError, match="unknown text modality 'rgb'"):
        tok.encode_modality("rgb", [1], max_length=4)
    with pytest.raises(FourmError, match="unknown metadata key 'weather'"):
        tok.encode_modality("metadata", [{"weather": "sunny"}], max_length=8)
    assert tok.encode_modality("metadata", [{"weather": "sunny"}], max_length=8, strict=False)[
        1
    ].tolist() == [1]


def test_decode_modality_lenient_on_truncated_output(tok):
    boxes = [
        {"label": "circle", "box": [0.1, 0.1, 0.4, 0.4]},
        {"label": "square", "box": [0.5, 0.5, 0.9, 0.9]},
    ]
    full, lengths = tok.encode_modality("bboxes", [boxes], max_length=32, add_eos=False)
    cut = full[:, : int(lengths[0]) - 2]  # the second box loses two coordinates
    with pytest.raises(FourmError, match="truncated box"):
        tok.decode_modality("bboxes", cut)
    assert tok.decode_modality("bboxes", cut, strict=False) == [quantize_bboxes(boxes[:1], 64)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda label, a, b, c, d: {"label": label, "box": [min(a, c), min(b, d), max(a, c), max(b, d)]},
            st.sampled_from(SHAPES + COLORS + ["zebra crossing"]),
            *[st.floats(0, 1, allow_nan=False)] * 4,
        ),
        max_size=4,
    )
)
def test_bboxes_through_tokenizer_property(tok, boxes):
    ids, _ = tok.encode_modality("bboxes", [boxes], max_length=128)
    decoded = tok.decode_modality("bboxes", ids)[0]
    assert decoded == quantize_bboxes(boxes, 64)
    assert tok.encode_modality("bboxes", [decoded], max_length=128)[0].tolist() == ids.tolist()


def test_training_is_deterministic(tok):
    again = TextTokenizer.train(CAPTIONS + SHAPES + COLORS, vocab_size=VOCAB_SIZE)
    assert again.vocab_size == tok.vocab_size
    assert [again.id_to_token(i) for i in range(tok.vocab_size)] == [
        tok.id_to_token(i) for i in range(tok.vocab_size)
    ]


def test_training_errors():
    with pytest.raises(FourmError, match="vocab_size must be an integer >="):
        TextTokenizer.train(CAPTIONS, vocab_size=100)
    with pytest.raises(FourmError, match="training text 1 must be a string"):
        TextTokenizer.train(["ok", 3], vocab_size=VOCAB_SIZE)


def test_training_ignores_structured_tokens_in_corpus():
    plain = TextTokenizer.train(["red circle", "blue square"] * 3, vocab_size=VOCAB_SIZE)
    mixed = TextTokenizer.train(["red circle [x=3] [y=4]", "[S_0]blue square"] * 3, vocab_size=VOCAB_SIZE)
    assert [mixed.id_to_token(i) for i in range(mixed.vocab_size)] == [
        plain.id_to_token(i) for i in range(plain.vocab_size)
    ]


def test_misc_errors(tok):
    with pytest.raises(FourmError, match="unknown token '\\[x=999\\]'"):
        tok.token_id("[x=999]")
    with pytest.raises(FourmError, match="list of strings"):
        tok.encode("a red circle", max_length=8)
    with pytest.raises(FourmError, match="max_length"):
        tok.encode(["a"], max_length=1, add_sos=True, add_eos=True)


def test_save_load_identical(tok, tmp_path):
    path = tmp_path / "text_tok"
    tok.save_pretrained(path)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "tokenizer.json"]
    loaded = TextTokenizer.from_pretrained(path)
    texts = CAPTIONS[:4] + ["circle [x=1] [y=2] [x=3] [y=4]", "zebra"]
    assert torch.equal(loaded.encode(texts, 32)[0], tok.encode(texts, 32)[0])
    assert loaded.vocab_size == tok.vocab_size and loaded.config == tok.config
    tok.save_pretrained(path)  # overwriting its own directory is fine


def test_from_pretrained_errors(tok, tmp_path):
    with pytest.raises(FourmError, match="tokenizer directory not found"):
        TextTokenizer.from_pretrained(tmp_path / "nope")
    path = tmp_path / "t"
    tok.save_pretrained(path)
    (path / "tokenizer.json").write_text("{not json")
    with pytest.raises(FourmError, match="corrupt tokenizer.json"):
        TextTokenizer.from_pretrained(path)
    tok.save_pretrained(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["structured"]["coord_bins"] = 32
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FourmError, match="does not match its config"):
        TextTokenizer.from_pretrained(path)
    (path / "config.json").unlink()
    with pytest.raises(FourmError, match="missing config.json"):
        TextTokenizer.from_pretrained(path)
    (path / "model.safetensors").write_text("x")
    with pytest.raises(FourmError, match="refusing to replace"):
        tok.save_pretrained(path)
    assert (path / "model.safetensors").exists()


def test_corpus_from_samples():
    samples = [
        {"caption": "A red circle", "bboxes": [{"label": "circle", "box": [0, 0, 1, 1]}]},
        {"metadata": {"dominant_color": "dark red", "brightness": 0.5}, "color_palette": [[1, 2, 3]]},
    ]
    assert list(corpus_from_samples(samples)) == ["A red circle", "circle", "dark red"]


def test_world_samples_round_trip_with_default_config():
    generate = pytest.importorskip("fourm.data.world.generate")
    samples = [generate.render_sample(i, seed=0) for i in range(30)]
    world_tok = TextTokenizer.train(corpus_from_samples(samples), vocab_size=1000)
    cfg = world_tok.config.structured
    captions = [s["caption"] for s in samples]
    ids, _ = world_tok.encode_modality("caption", captions, max_length=128)
    assert world_tok.decode_modality("caption", ids) == [c.lower() for c in captions]
    for name, quantize, arg in [
        ("bboxes", quantize_bboxes, cfg.coord_bins),
        ("color_palette", quantize_palette, cfg.color_levels),
        ("metadata", quantize_metadata, cfg.metadata),  # every key of the world is known
    ]:
        values = [s[name] for s in samples]
        ids, _ = world_tok.encode_modality(name, values, max_length=128)
        assert world_tok.decode_modality(name, ids) == [quantize(v, arg) for v in values]
