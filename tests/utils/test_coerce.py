"""``coerce`` and its per-kind helpers (unions, literals, dataclasses, mappings, sequences, plain types)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pytest

from fourm.errors import FourmError
from fourm.utils.config import (
    Config,
    _coerce_dataclass,
    _coerce_literal,
    _coerce_mapping,
    _coerce_plain,
    _coerce_sequence,
    _coerce_union,
    coerce,
)


@dataclasses.dataclass
class Point(Config):
    x: int = 0
    y: float = 0.0


def test_union_takes_the_first_member_that_fits():
    assert _coerce_union(None, int | None, "f", False) is None
    assert _coerce_union("3", int | str, "f", False) == "3"
    assert _coerce_union(3, float | str, "f", False) == 3.0
    with pytest.raises(FourmError, match=r"'f': \[1\] \(expected int \| None\)"):
        _coerce_union([1], int | None, "f", False)
    with pytest.raises(FourmError, match="expected a finite number"):  # not "expected float | None"
        _coerce_union(float("nan"), float | None, "f", False)
    assert _coerce_union(float("inf"), float | None, "f", True) == float("inf")


def test_literal_names_the_choices():
    assert _coerce_literal("a", Literal["a", "b"], "k") == "a"
    with pytest.raises(FourmError, match="expected one of 'a', 'b'"):
        _coerce_literal("c", Literal["a", "b"], "k")


def test_dataclass_from_a_mapping_with_prefixed_field_names():
    assert _coerce_dataclass({"x": 2}, Point, "p") == Point(x=2)
    p = Point(1, 2.0)
    assert _coerce_dataclass(p, Point, "p") is p
    with pytest.raises(FourmError, match="unknown config field 'p.z'"):
        _coerce_dataclass({"z": 1}, Point, "p")
    with pytest.raises(FourmError, match="expected a mapping"):
        _coerce_dataclass([1], Point, "p")


def test_mapping_checks_keys_and_values_and_copies():
    data = {"a": 1}
    out = _coerce_mapping(data, dict, "m", False)
    assert out == data and out is not data
    assert _coerce_mapping({"a": 1}, dict[str, float], "m", False) == {"a": 1.0}
    with pytest.raises(FourmError, match="'m.a': 'x' \\(expected a number\\)"):
        _coerce_mapping({"a": "x"}, dict[str, float], "m", False)


def test_sequence_kinds_and_item_paths():
    assert _coerce_sequence((1, 2), list[float], "s", False) == [1.0, 2.0]
    assert _coerce_sequence([1, 2], tuple[int, ...], "s", False) == (1, 2)
    assert _coerce_sequence([1, "a"], tuple[int, str], "s", False) == (1, "a")
    assert _coerce_sequence([1, "a"], list, "s", False) == [1, "a"]
    with pytest.raises(FourmError, match="expected 2 items, got 3"):
        _coerce_sequence([1, 2, 3], tuple[int, int], "s", False)
    with pytest.raises(FourmError, match=r"'s\[1\]': 'b' \(expected an integer\)"):
        _coerce_sequence([1, "b"], list[int], "s", False)
    with pytest.raises(FourmError, match="expected a list"):
        _coerce_sequence("ab", list[str], "s", False)


def test_plain_types_are_strict_except_int_to_float():
    two = _coerce_plain(2, float, "v", False)
    assert two == 2.0 and isinstance(two, float)
    for value, tp, expected in [
        (True, int, "an integer"),
        (1, bool, "true or false"),
        (3, str, "a string"),
        (True, float, "a number"),
        (10**400, float, "a finite number"),
        (float("inf"), float, "a finite number"),
        ("x", bytes, "bytes"),
    ]:
        with pytest.raises(FourmError, match=f"expected {expected}"):
            _coerce_plain(value, tp, "v", False)
    nan = _coerce_plain(float("nan"), float, "v", True)
    assert nan != nan  # kept where allowed


def test_coerce_dispatches_to_the_helpers():
    assert coerce({"x": 1}, Point, "p") == Point(x=1)
    assert coerce({"a": [1, 2]}, dict[str, tuple[float, ...]], "d") == {"a": (1.0, 2.0)}
    assert coerce([{"x": 1}, None], list[Point | None], "l") == [Point(x=1), None]
    assert coerce(object, Any, "a") is object
