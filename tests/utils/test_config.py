"""Typed config loading: type checks, unknown fields, overrides, JSON round trip."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from fourm.errors import FourmError
from fourm.utils.config import Config, apply_overrides


@dataclass
class Inner(Config):
    rate: float = 0.1
    names: list[str] = field(default_factory=list)


@dataclass
class Outer(Config):
    width: int = 8
    kind: Literal["conv", "vit"] = "conv"
    span: tuple[float, float] = (0.0, 1.0)
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None

    def validate(self) -> None:
        if self.width <= 0:
            raise FourmError(f"width must be > 0, got {self.width}")


def test_loads_nested_and_converts_types():
    cfg = Outer.from_dict({"width": 4, "span": [0, 2], "inner": {"rate": 1, "names": ["a"]}, "maybe": 3})
    assert cfg.width == 4 and cfg.span == (0.0, 2.0) and isinstance(cfg.inner.rate, float)
    assert cfg.inner.names == ["a"] and cfg.maybe == 3


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"widht": 3}, "unknown config field 'widht'"),
        ({"width": "3"}, "'width'"),
        ({"width": True}, "'width'"),
        ({"kind": "mlp"}, "'kind'"),
        ({"span": [1, 2, 3]}, "'span'"),
        ({"inner": {"rate": "x"}}, "'inner.rate'"),
        ({"inner": {"bogus": 1}}, "'inner.bogus'"),
        ({"width": 0}, "width must be > 0"),
    ],
)
def test_errors_name_the_field(data, fragment):
    with pytest.raises(FourmError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        Outer.from_dict(data)


def test_yaml_and_json_round_trip(tmp_path):
    (tmp_path / "c.yaml").write_text("width: 5\nkind: vit\ninner:\n  names: [x, y]\n")
    cfg = Outer.from_file(tmp_path / "c.yaml")
    cfg.save_json(tmp_path / "c.json")
    assert Outer.from_file(tmp_path / "c.json") == cfg


def test_file_errors(tmp_path):
    with pytest.raises(FourmError, match="not found"):
        Outer.from_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("width: [1\n")
    with pytest.raises(FourmError, match="malformed"):
        Outer.from_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(FourmError, match="mapping"):
        Outer.from_file(tmp_path / "list.yaml")


def test_overrides():
    out = apply_overrides({"a": {"b": 1}}, ["a.b=2", "a.c=[1, 2]", "d=hello", "lr=1e-4", "n=inf"])
    assert out == {"a": {"b": 2, "c": [1, 2]}, "d": "hello", "lr": 1e-4, "n": float("inf")}
    assert isinstance(out["a"]["b"], int)
    with pytest.raises(FourmError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_overrides_index_lists():
    base = {"data": {"datasets": [{"path": "a", "weight": 1.0}, {"path": "b"}]}, "betas": [0.9, 0.95]}
    out = apply_overrides(base, ["data.datasets.1.path=c", "betas.0=0.8"])
    assert out["data"]["datasets"] == [{"path": "a", "weight": 1.0}, {"path": "c"}]
    assert out["betas"] == [0.8, 0.95]
    assert base["data"]["datasets"][1]["path"] == "b"  # the input is not changed
    for bad in ("data.datasets.2.path=x", "data.datasets.first.path=x", "betas.-1=0.5", "betas.0.x=1"):
        with pytest.raises(FourmError, match="override"):
            apply_overrides(base, [bad])
