"""Structured vocabulary and serializers: binning references, property-based round trips, malformed
text errors, lenient decoding and user box strings."""

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fourm.errors import FourmError
from tokenizers_zoo.text.serializers import (
    bboxes_to_text,
    metadata_to_text,
    palette_to_text,
    parse_bbox_string,
    quantize_bboxes,
    quantize_metadata,
    quantize_palette,
    text_to_bboxes,
    text_to_metadata,
    text_to_palette,
)
from tokenizers_zoo.text.vocabulary import (
    SPECIAL_TOKENS,
    MetadataField,
    MetadataSpec,
    StructuredVocabConfig,
    parse_token,
    structured_tokens,
)

SETTINGS = settings(max_examples=60, deadline=None)

# ------------------------------------------------------------------------------------ vocabulary


def test_structured_tokens_layout_pad_first_and_distinct():
    cfg = StructuredVocabConfig(num_sentinels=4, coord_bins=8, color_levels=4, max_palette_size=3)
    tokens = structured_tokens(cfg)
    assert tokens[: len(SPECIAL_TOKENS)] == ["[PAD]", "[SOS]", "[EOS]", "[UNK]", "[MASK]"]
    assert len(set(tokens)) == len(tokens)
    n_meta = len(cfg.metadata.keys)
    assert len(tokens) == 5 + 4 + 2 * 8 + (3 + 1) + 4 + n_meta + cfg.metadata.bins
    assert tokens[5:9] == ["[S_0]", "[S_1]", "[S_2]", "[S_3]"]
    assert "[x=7]" in tokens and "[x=8]" not in tokens and "[y=0]" in tokens
    assert "[palette=3]" in tokens and "[palette=4]" not in tokens
    assert "[meta:brightness]" in tokens and f"[m={cfg.metadata.bins - 1}]" in tokens


def test_parse_token():
    assert parse_token("[x=3]") == ("x", 3)
    assert parse_token("[y=12]") == ("y", 12)
    assert parse_token("[S_2]") == ("S", 2)
    assert parse_token("[palette=5]") == ("palette", 5)
    assert parse_token("[meta:object_count]") == ("meta", "object_count")
    assert parse_token("[PAD]") is None
    assert parse_token("x=3") is None
    assert parse_token("[x=-1]") is None


def test_vocab_config_round_trip_and_validation():
    cfg = StructuredVocabConfig(
        coord_bins=16, metadata=MetadataSpec(keys={"size": MetadataField("int", 0, 5)}, bins=8)
    )
    again = StructuredVocabConfig.from_dict(cfg.to_dict())
    assert again == cfg and structured_tokens(again) == structured_tokens(cfg)
    with pytest.raises(FourmError, match="coord_bins"):
        StructuredVocabConfig(coord_bins=1)
    with pytest.raises(FourmError, match="Bad Key"):
        MetadataSpec(keys={"Bad Key": MetadataField()})
    with pytest.raises(FourmError, match="lo < hi"):
        MetadataField("float", 1.0, 0.0)
    with pytest.raises(FourmError, match="unknown config field 'metadata.keys.a.kynd'"):
        StructuredVocabConfig.from_dict({"metadata": {"keys": {"a": {"kynd": "int"}}}})


# ----------------------------------------------------------------------------------------- boxes

words = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=6)
labels = st.lists(words, min_size=1, max_size=3).map(lambda ws: "  ".join(ws))
unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def boxes(draw):
    x0, x1 = sorted([draw(unit), draw(unit)])
    y0, y1 = sorted([draw(unit), draw(unit)])
    return {"label": draw(labels), "box": [x0, y0, x1, y1]}


@SETTINGS
@given(st.lists(boxes(), max_size=5), st.integers(2, 300))
def test_bboxes_round_trip_equals_quantize_and_is_idempotent(items, bins):
    text = bboxes_to_text(items, bins)
    decoded = text_to_bboxes(text, bins)
    assert decoded == quantize_bboxes(items, bins)
    assert bboxes_to_text(decoded, bins) == text
    assert quantize_bboxes(decoded, bins) == decoded
    for original, back in zip(items, decoded):
        assert back["label"] == " ".join(original["label"].lower().split())
        assert all(abs(a - b) <= 0.5 / (bins - 1) + 1e-12 for a, b in zip(original["box"], back["box"]))


def test_bboxes_reference_binning():
    # 5 bins stand for 0, .25, .5, .75, 1; 0.375 rounds half up to .5
    items = [{"label": "Red  Circle", "box": [0.0, 0.3, 0.375, 1.0]}]
    assert bboxes_to_text(items, 5) == "red circle [x=0] [y=1] [x=2] [y=4]"
    assert text_to_bboxes("red circle [x=0] [y=1] [x=2] [y=4]", 5) == [
        {"label": "red circle", "box": [0.0, 0.25, 0.5, 1.0]}
    ]
    assert bboxes_to_text([], 5) == "" and text_to_bboxes("", 5) == []
    # [UNK] (a word the tokenizer could not spell) is kept as a label word
    unk = text_to_bboxes("big [UNK] [x=0] [y=0] [x=4] [y=4]", 5)
    assert unk == [{"label": "big [UNK]", "box": [0.0, 0.0, 1.0, 1.0]}]
    assert bboxes_to_text(unk, 5) == "big [UNK] [x=0] [y=0] [x=4] [y=4]"


@pytest.mark.parametrize(
    "text, message",
    [
        ("a [z=3] [y=1] [x=2] [y=2]", "unknown token '[z=3]'"),
        ("a [x=1] [SOS] [x=2] [y=2]", "unknown token '[SOS]'"),
        ("a [x=64] [y=1] [x=2] [y=2]", "'[x=64]' out of range"),
        ("a [x=1] [y=2]", "truncated box 'a [x=1] [y=2]'"),
        ("a [x=1] [y=1] [x=2] [y=2] b", "truncated box 'b'"),
        ("a [x=1] [y=2] [x=3] b [x=1] [y=1] [x=2] [y=2]", "has 3 coordinate tokens, expected 4"),
        ("a [x=1] [y=1] [x=2] [y=2] [x=3]", "has 5 coordinate tokens, expected 4"),
        ("a [y=1] [x=1] [x=2] [y=2]", "order"),
        ("a [x=5] [y=1] [x=2] [y=2]", "inverted"),
        ("[x=1] [y=1] [x=2] [y=2]", "box without a label"),
    ],
)
def test_text_to_bboxes_malformed(text, message):
    with pytest.raises(FourmError) as info:
        text_to_bboxes(text, 64)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_text_to_bboxes_lenient_skips_bad_groups():
    text = (
        "a [x=0] [y=0] [x=63] [y=63] b [x=99] [y=1] [x=2] [y=2] "
        "c [x=1] [y=2] [x=3] d [x=21] [y=0] [x=42] [y=63] e [x=1]"
    )
    got = text_to_bboxes(text, 64, strict=False)
    assert got == [
        {"label": "a", "box": [0.0, 0.0, 1.0, 1.0]},
        {"label": "d", "box": [1 / 3, 0.0, 2 / 3, 1.0]},
    ]
    with pytest.raises(FourmError):
        text_to_bboxes(text, 64)


@pytest.mark.parametrize(
    "item, message",
    [
        ({"label": "a", "box": [0.1, 0.1, 1.2, 0.5]}, "must lie in [0, 1]"),
        ({"label": "a", "box": [0.5, 0.1, 0.2, 0.5]}, "x0 <= x1"),
        ({"label": "a", "box": [0.1, 0.1, 0.5]}, "expected 4 numbers"),
        ({"label": "a [x=1]", "box": [0.1, 0.1, 0.2, 0.5]}, "bracket"),
        ({"label": "  ", "box": [0.1, 0.1, 0.2, 0.5]}, "empty"),
        ({"box": [0.1, 0.1, 0.2, 0.5]}, "expected a box"),
    ],
)
def test_bboxes_to_text_rejects_bad_boxes(item, message):
    with pytest.raises(FourmError) as info:
        bboxes_to_text([item], 64)
    assert message in str(info.value)


# --------------------------------------------------------------------------------------- palette

channel = st.integers(0, 255)
colors = st.lists(st.lists(channel, min_size=3, max_size=3), max_size=8)


@SETTINGS
@given(colors, st.integers(2, 256))
def test_palette_round_trip_equals_quantize_and_is_idempotent(palette, levels):
    text = palette_to_text(palette, levels)
    decoded = text_to_palette(text, levels)
    assert decoded == quantize_palette(palette, levels)
    assert palette_to_text(decoded, levels) == text
    assert quantize_palette(decoded, levels) == decoded
    step = 255 / (levels - 1)
    for rgb, back in zip(palette, decoded):
        assert all(abs(a - b) <= step / 2 + 0.5 for a, b in zip(rgb, back))


def test_palette_reference_levels():
    # 16 levels are multiples of 17
    assert (
        palette_to_text([[255, 0, 8], [9, 17, 128]], 16) == "[palette=2] [c=15] [c=0] [c=0] [c=1] [c=1] [c=8]"
    )
    assert quantize_palette([[255, 0, 8], [9, 17, 128]], 16) == [[255, 0, 0], [17, 17, 136]]
    assert palette_to_text([], 16) == "[palette=0]" and text_to_palette("[palette=0]", 16) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("[c=1] [c=2] [c=3]", "must start with a [palette=k] token"),
        ("", "must start with a [palette=k] token"),
        ("[palette=2] [c=1] [c=2] [c=3] [c=4]", "truncated palette"),
        ("[palette=1] [c=1] [c=2] [c=3] [c=4]", "expected 3"),
        ("[palette=1] [c=1] [c=16] [c=3]", "'[c=16]' out of range"),
        ("[palette=1] [c=1] red [c=3]", "unexpected word 'red'"),
        ("[palette=1] [c=1] [x=2] [c=3]", "unexpected token '[x=2]'"),
        ("[palette=9] " + "[c=0] " * 27, "'[palette=9]' out of range"),
    ],
)
def test_text_to_palette_malformed(text, message):
    with pytest.raises(FourmError) as info:
        text_to_palette(text, 16, max_colors=8)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_text_to_palette_lenient():
    text = "[palette=3] [c=1] [c=2] [c=3] [c=99] [c=1] [c=1] [c=4] [c=4] [c=4] [c=5]"
    assert text_to_palette(text, 16, strict=False) == [[17, 34, 51], [68, 68, 68]]
    assert text_to_palette("[c=15] [c=15] [c=15] [c=1]", 16, strict=False) == [[255, 255, 255]]


@pytest.mark.parametrize(
    "palette, message",
    [
        ([[1, 2]], "expected [r, g, b]"),
        ([[1, 2, 300]], "[0, 255]"),
        ([[0, 0, 0]] * 9, "more than the maximum 8"),
    ],
)
def test_palette_to_text_rejects_bad_palettes(palette, message):
    with pytest.raises(FourmError) as info:
        palette_to_text(palette, 16, max_colors=8)
    assert message in str(info.value)


# -------------------------------------------------------------------------------------- metadata

SPEC = MetadataSpec(
    keys={
        "brightness": MetadataField("float", 0.0, 1.0),
        "tilt": MetadataField("float", -30.0, 30.0),
        "object_count": MetadataField("int", 0, 8),
        "area": MetadataField("int", 0, 10_000),
        "dominant_color": MetadataField("category"),
        "scene": MetadataField("category", choices=["indoor", "outdoor scene"]),
    },
    bins=32,
)

metadata_values = st.fixed_dictionaries(
    {},
    optional={
        "brightness": st.floats(-0.5, 1.5, allow_nan=False),
        "tilt": st.floats(-30, 30, allow_nan=False),
        "object_count": st.integers(0, 8),
        "area": st.integers(-5, 12_000),
        "dominant_color": labels,
        "scene": st.sampled_from(["indoor", "Outdoor  Scene"]),
    },
)


@SETTINGS
@given(metadata_values)
def test_metadata_round_trip_equals_quantize_and_is_idempotent(meta):
    text = metadata_to_text(meta, SPEC)
    decoded = text_to_metadata(text, SPEC)
    assert decoded == quantize_metadata(meta, SPEC)
    assert metadata_to_text(decoded, SPEC) == text
    assert quantize_metadata(decoded, SPEC) == decoded
    if "object_count" in meta:  # a small int range is exact
        assert decoded["object_count"] == meta["object_count"]
    if "brightness" in meta:  # clipped, then within half a bin
        assert abs(decoded["brightness"] - min(1.0, max(0.0, meta["brightness"]))) <= 0.5 / 31 + 1e-12


def test_metadata_reference_binning():
    meta = {"tilt": 0.0, "brightness": 1.0, "area": 10_000, "object_count": 3, "scene": "Indoor"}
    text = metadata_to_text(meta, SPEC)
    # spec order; tilt 0 is bin 15.5 -> 16; area bins are 10000/31 apart
    assert (
        text
        == "[meta:brightness] [m=31] [meta:tilt] [m=16] [meta:object_count] [m=3] [meta:area] [m=31] [meta:scene] indoor"
    )
    assert text_to_metadata(text, SPEC) == {
        "brightness": 1.0,
        "tilt": -30.0 + 16 * 60 / 31,
        "object_count": 3,
        "area": 10_000,
        "scene": "indoor",
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("[meta:foo] [m=1]", "unknown metadata key 'foo'"),
        ("[meta:brightness]", "truncated metadata entry '[meta:brightness]'"),
        ("[meta:brightness] [meta:tilt] [m=1]", "'[meta:brightness]' has no value"),
        ("[meta:brightness] [m=32]", "'[m=32]' out of range"),
        ("[meta:object_count] [m=9]", "'[m=9]' out of range for 'object_count' (bins: 0..8)"),
        ("[meta:brightness] bright", "expects a [m=i] value token, got 'bright'"),
        ("[meta:brightness] [x=3]", "got '[x=3]'"),
        ("[meta:brightness] [m=1] [m=2]", "expects one [m=i] token"),
        ("[meta:brightness] [m=1] [meta:brightness] [m=2]", "appears more than once"),
        ("hello [meta:brightness] [m=1]", "must start with a [meta:key] token"),
        ("[meta:scene] garden", "is not one of indoor, outdoor scene"),
    ],
)
def test_text_to_metadata_malformed(text, message):
    with pytest.raises(FourmError) as info:
        text_to_metadata(text, SPEC)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_text_to_metadata_lenient():
    text = "junk [meta:foo] [m=1] [meta:brightness] [m=31] [meta:tilt] [meta:dominant_color] dark red [meta:brightness] [m=0]"
    assert text_to_metadata(text, SPEC, strict=False) == {"brightness": 1.0, "dominant_color": "dark red"}


def test_metadata_to_text_errors_and_lenient_unknown_keys():
    with pytest.raises(FourmError, match="unknown metadata key 'weather'"):
        metadata_to_text({"weather": "sunny"}, SPEC)
    assert (
        metadata_to_text({"weather": "sunny", "object_count": 2}, SPEC, strict=False)
        == "[meta:object_count] [m=2]"
    )
    with pytest.raises(FourmError, match="expected a finite number"):
        metadata_to_text({"brightness": "high"}, SPEC)
    with pytest.raises(FourmError, match="not one of"):
        metadata_to_text({"scene": "garden"}, SPEC)


# ----------------------------------------------------------------------------- user box strings


def test_parse_bbox_string_accepts_documented_format():
    got = parse_bbox_string("circle 0.1 0.1 0.4 0.4; big red square 0.5 0.5 0.9 1 ;")
    assert got == [
        {"label": "circle", "box": [0.1, 0.1, 0.4, 0.4]},
        {"label": "big red square", "box": [0.5, 0.5, 0.9, 1.0]},
    ]
    assert parse_bbox_string("  ") == []
    assert text_to_bboxes(bboxes_to_text(got, 11), 11)[0]["box"] == [0.1, 0.1, 0.4, 0.4]


@pytest.mark.parametrize(
    "text, message",
    [
        ("circle 0.1 0.1", "malformed box 'circle 0.1 0.1': expected 'label x0 y0 x1 y1'"),
        ("0.1 0.1 0.4 0.4", "expected 'label x0 y0 x1 y1'"),
        ("circle 0.1 0.1 0.4 big", "4 numbers"),
        ("circle 0.5 0.1 0.4 0.4", "box coordinates must satisfy 0 <= x0 < x1 <= 1"),
        ("circle 0.1 0.1 0.4 1.5", "box coordinates must satisfy"),
        ("circle 0.1 0.1 0.1 0.4", "box coordinates must satisfy"),
        ("circle 0.1 nan 0.4 0.4", "finite"),
        ("a [x=1] 0.1 0.1 0.4 0.4", "brackets"),
    ],
)
def test_parse_bbox_string_rejects_malformed(text, message):
    with pytest.raises(FourmError) as info:
        parse_bbox_string("square 0 0 1 1; " + text)
    assert message in str(info.value)
