"""Depth errors vs a per-pixel reference loop; the validity mask; perfect predictions; bad input."""

import math

import numpy as np
import pytest

from fourm.errors import FourmError
from fourm.eval.depth import depth_errors


def naive(pred, true, mask):
    errs, sq, rel, good = [], [], [], []
    for p, t, m in zip(pred.ravel(), true.ravel(), mask.ravel()):
        if not m or t <= 1e-3:
            continue
        errs.append(abs(p - t))
        sq.append((p - t) ** 2)
        rel.append(abs(p - t) / t)
        good.append(max(p / t, t / p) < 1.25)
    return np.mean(errs), math.sqrt(np.mean(sq)), np.mean(rel), np.mean(good)


@pytest.mark.parametrize("seed", range(4))
def test_matches_reference(seed):
    rng = np.random.default_rng(seed)
    true = rng.uniform(0.1, 1.0, (2, 12, 12))
    true[0, 0, :4] = 0.0  # invalid truth is skipped
    pred = np.clip(true + rng.normal(0, 0.15, true.shape), 0.01, 1.0)
    mask = rng.random(true.shape) < 0.7
    got = depth_errors(pred, true, mask)
    mae, rmse, rel, delta = naive(pred, true, mask)
    assert got["mae"] == pytest.approx(mae)
    assert got["rmse"] == pytest.approx(rmse)
    assert got["abs_rel"] == pytest.approx(rel)
    assert got["delta1"] == pytest.approx(delta)
    assert 0 < got["delta1"] < 1


def test_mask_excludes_pixels_and_perfect_prediction():
    true = np.linspace(0.2, 0.9, 16).reshape(4, 4)
    pred = true.copy()
    assert depth_errors(pred, true) == {
        "mae": 0.0,
        "rmse": 0.0,
        "abs_rel": 0.0,
        "delta1": 1.0,
        "valid_fraction": 1.0,
    }
    pred[0, 0] = 5.0
    mask = np.ones_like(true, bool)
    mask[0, 0] = False
    assert depth_errors(pred, true, mask)["mae"] == 0.0
    assert depth_errors(pred, true)["mae"] > 0.2


def test_empty_and_bad_input():
    assert math.isnan(depth_errors(np.ones((2, 2)), np.zeros((2, 2)))["mae"])
    with pytest.raises(FourmError, match="shape"):
        depth_errors(np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(FourmError, match="mask"):
        depth_errors(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 3), bool))
