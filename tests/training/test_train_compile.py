"""``compile: true``: the loss under torch.compile trains as eager does; no compiler is a one-line error."""

from __future__ import annotations

import csv

import pytest
import torch
from training_testing import tiny_config

from fourm.errors import FourmError
from fourm.training import train


def losses(run) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_compiled_run_matches_eager(token_data, tmp_path):
    from torch._dynamo.utils import counters

    eager = train(tiny_config(token_data, tmp_path / "eager", steps=3))
    counters.clear()
    compiled = train(tiny_config(token_data, tmp_path / "compiled", steps=3, compile=True))
    assert counters["stats"]["unique_graphs"] > 0  # the loss did run compiled
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), rel=1e-4, abs=1e-5)
    want = eager.model.state_dict()
    for name, value in compiled.model.state_dict().items():
        torch.testing.assert_close(value, want[name], rtol=1e-3, atol=1e-4, msg=name)


def test_missing_compiler_is_a_one_line_error(token_data, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-fourm")
    with pytest.raises(FourmError, match=r"compile: true needs a C\+\+ compiler on CPU .*no-such-compiler-fourm") as info:
        train(tiny_config(token_data, tmp_path / "run", steps=2, compile=True))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "model").exists()
