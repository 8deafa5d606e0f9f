"""Property tests: the parsers of user strings and files either give a valid value or raise
FourmError, never another exception (``--cond``, boxes, key=value overrides, modality YAMLs)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fourm.cli import parse_assignments
from fourm.codecs.values import parse_value
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry
from fourm.utils.config import apply_overrides
from tokenizers_zoo.text import parse_bbox_string

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)).map(str)
BOX_TEXT = st.lists(
    st.tuples(st.sampled_from(["circle", "red square", "", "a;b", "0.5"]), st.lists(NUMBER, max_size=6)), max_size=4
).map(lambda parts: "; ".join(" ".join([label, *nums]) for label, nums in parts))
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
SURROGATE_TEXT = st.text(max_size=30)  # may hold lone surrogates: undecodable argv bytes


@FAST
@given(st.one_of(BOX_TEXT, ANY_TEXT))
def test_parse_bbox_string(text):
    try:
        boxes = parse_bbox_string(text)
    except FourmError:
        return
    for b in boxes:
        x0, y0, x1, y1 = b["box"]
        assert isinstance(b["label"], str) and all(math.isfinite(v) for v in b["box"])
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


@FAST
@given(st.lists(st.one_of(ANY_TEXT, SURROGATE_TEXT, st.sampled_from(["caption=a", "=x", "rgb=", "a=b=c"])), max_size=4))
def test_cond_assignments(items):
    try:
        out = parse_assignments(items, "--cond")
    except FourmError:
        return
    assert all(isinstance(k, str) and k and k == k.strip() for k in out) and len(out) <= len(items)


@FAST
@given(st.sampled_from(["bboxes", "color_palette", "metadata", "caption"]),
       st.one_of(BOX_TEXT, ANY_TEXT, st.sampled_from(["[", "[1, 2]", "{\"a\": NaN}", "#ff00zz", "1 2 3 4", "a=1,,b"])))
def test_cond_values(kind, text):
    try:
        value = parse_value(kind, text)
    except FourmError:
        return
    if kind == "color_palette":
        assert isinstance(value, list)
    elif kind == "metadata":
        assert isinstance(value, dict)
    elif kind == "caption":
        assert value == text


KEY = st.lists(st.sampled_from(["optim", "lr", "a", "", "b.c", " "]), min_size=1, max_size=3).map(".".join)
VALUE = st.one_of(ANY_TEXT, st.sampled_from(["nan", ".inf", "[1, 2", "{a: 1}", "1e-4", "!!python/object:os.system",
                                             "&a [*a]", "- x", "'"]))  # fmt: skip


@FAST
@given(st.lists(st.one_of(ANY_TEXT, st.tuples(KEY, VALUE).map("=".join)), max_size=3))
def test_key_value_overrides(items):
    from fourm.training.config import TrainConfig

    base = {"optim": {"lr": 1e-3}, "steps": 10}
    try:
        data = apply_overrides(base, items)
    except FourmError:
        return
    assert isinstance(data, dict) and base == {"optim": {"lr": 1e-3}, "steps": 10}  # the input is not changed
    try:
        cfg = TrainConfig.from_dict(data)
    except FourmError:
        return
    assert math.isfinite(cfg.optim.lr)


SPEC_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["image", "sequence", "vector", "picture", 3, None]),
        "vocab_size": st.one_of(st.integers(-2, 2000), st.floats(allow_nan=True), st.text(max_size=3)),
        "num_tokens": st.one_of(st.integers(-2, 300), st.none()),
        "max_length": st.one_of(st.integers(-2, 300), st.none()),
        "image_size": st.one_of(st.integers(-2, 300), st.just(1e308)),
        "value_range": st.one_of(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3), st.text(max_size=3)),
        "tokenizer": st.one_of(st.text(max_size=8), st.none()),
        "name": st.sampled_from(["m", "other", 1]),
    },
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(SPEC_FIELDS.map(lambda d: yaml.safe_dump(d).encode()), st.binary(max_size=64),
                 st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass"))))  # fmt: skip
def test_modality_yaml(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_bytes(content)
        try:
            registry = ModalityRegistry.from_files([path])
        except FourmError:
            return
    spec = registry["m"]
    assert spec.kind in ("image", "sequence", "vector") and spec.vocab_size > 0
    assume(True)
