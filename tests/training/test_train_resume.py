"""Exact resume: N steps straight == N/2 steps + resume + N/2 steps, bit for bit (CPU, fp32)."""

from __future__ import annotations

import pytest
import torch
from training_testing import tiny_config

from fourm.model import FourM
from fourm.training import train


def weights(model: FourM) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "workers, grad_accum", [(0, 1), (2, 2)], ids=["workers0", "workers2-accum2"]
)
def test_resume_gives_identical_weights(token_data, tmp_path, workers, grad_accum):
    # 48 samples / batch 4 = 12 batches per epoch: 8 steps x grad_accum cross an epoch boundary at accum 2;
    # dropout makes the result depend on the restored torch RNG too
    common = dict(
        steps=8,
        num_workers=workers,
        grad_accum=grad_accum,
        model={"overrides": {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2, "dropout": 0.1}},
    )
    straight = train(tiny_config(token_data, tmp_path / "straight", **common))
    half = train(tiny_config(token_data, tmp_path / "split", **common), stop_at=4)
    assert half.step == 4 and half.final_model is None and half.checkpoint.name == "step_00000004"
    resumed = train(tiny_config(token_data, tmp_path / "split", **common), resume="auto")
    assert resumed.step == 8 and straight.step == 8
    a, b = weights(straight.model), weights(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    # the final saved models agree too, and differ from the half-way weights (training happened)
    saved = FourM.from_pretrained(resumed.final_model)
    assert all(torch.equal(saved.state_dict()[k], a[k]) for k in a)
    halfway = FourM.from_pretrained(half.checkpoint / "model")
    assert any(not torch.equal(halfway.state_dict()[k], a[k]) for k in a)


def test_metrics_of_a_resumed_run_read_as_one_run(token_data, tmp_path):
    cfg = tiny_config(token_data, tmp_path / "run", steps=6)
    train(cfg, stop_at=3)
    train(cfg, resume="auto")
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4, 5, 6]
