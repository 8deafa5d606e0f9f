"""Wall-time cap (``max_minutes`` / ``--max-minutes``): LR schedule, stop with checkpoint + model,
elapsed time kept over resumes; ``--data`` replaces the config's datasets."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from training_testing import tiny_config

import fourm.training.loop as loop
from fourm.cli.train import main
from fourm.training.checkpoint import latest_checkpoint, read_trainer_state
from fourm.training.config import OptimConfig
from fourm.training.optim import WarmupCosine, lr_at

TICK = 10.0  # seconds the fake clock advances per reading


class FakeClock:
    """Stands in for ``time`` in the loop: ``monotonic`` advances TICK seconds per call."""

    def __init__(self) -> None:
        import time

        self.now, self._time = 0.0, time

    def monotonic(self) -> float:
        self.now += TICK
        return self.now

    def perf_counter(self) -> float:
        return self._time.perf_counter()


def test_lr_follows_the_larger_of_step_and_time_progress():
    lr, low = 1e-3, 1e-5
    assert lr_at(0, lr, low, 2, 100, time_fraction=0.9) == lr_at(0, lr, low, 2, 100)  # warm-up is by step
    mid = low + (lr - low) * 0.5
    assert lr_at(2, lr, low, 2, 102, time_fraction=0.5) == pytest.approx(mid)  # step progress 0, time half
    assert lr_at(52, lr, low, 2, 102, time_fraction=0.1) == pytest.approx(mid)  # step progress wins
    assert lr_at(3, lr, low, 2, 102, time_fraction=1.5) == pytest.approx(low)  # past the budget: min_lr
    cfg = OptimConfig(lr=lr, min_lr=low, warmup_steps=0)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = WarmupCosine(opt, cfg, total_steps=100)
    sched.time_fraction = 0.5
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(1, lr, low, 0, 100, 0.5))
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched2 = WarmupCosine(opt2, cfg, total_steps=100)
    sched2.load_state_dict(sched.state_dict())  # the time fraction survives a checkpoint
    assert sched2.time_fraction == 0.5 and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def _yaml(token_data, tmp_path, **changes):
    path = tmp_path / "train.yaml"
    cfg = tiny_config(token_data, tmp_path / "unused", steps=100, optim={"warmup_steps": 0}, **changes)
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def _lrs(run):
    import csv

    with open(run / "metrics.csv") as f:
        return {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f) if r.get("lr")}


def test_time_cap_stops_saves_and_survives_resume(token_data, tmp_path, monkeypatch, capsys):
    config, run = _yaml(token_data, tmp_path), tmp_path / "run"
    monkeypatch.setattr(loop, "time", FakeClock())
    # budget 30 s; elapsed = reading - 10 (start): 10, 20 before steps 1, 2, then 30 -> stop after 2
    # steps; the checkpoint reads the clock once more (40)
    assert main(["--config", str(config), "--out", str(run), "--max-minutes", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "time limit of 0.5 min reached: 2 of 100 steps" in out
    assert (run / "model" / "model.safetensors").is_file()
    ckpt = latest_checkpoint(run / "checkpoints")
    assert ckpt.name == "step_00000002"
    state = read_trainer_state(ckpt)
    assert state.step == 2 and state.elapsed_seconds == pytest.approx(40.0)  # read at the checkpoint
    assert json.loads((run / "config.json").read_text())["max_minutes"] == 0.5
    lrs = _lrs(run)  # step 2 trained with the lr set after step 1, at 10 of 30 s: time progress 1/3
    assert lrs[2] == pytest.approx(lr_at(1, 3e-3, 1e-4, 0, 100, time_fraction=10 / 30))
    assert lrs[2] < lr_at(1, 3e-3, 1e-4, 0, 100)  # lower than the step schedule alone

    # resume without --max-minutes: keeps the run's cap (not refused), whose time is already used up
    monkeypatch.setattr(loop, "time", FakeClock())
    assert main(["--config", str(config), "--out", str(run), "--resume", "auto"]) == 0
    assert "time limit of 0.5 min reached: 2 of 100 steps" in capsys.readouterr().out
    assert latest_checkpoint(run / "checkpoints").name == "step_00000002"

    # resume with a larger budget (1 min): 40 s were used; 50 before step 3, then 60 -> stop, counted on
    monkeypatch.setattr(loop, "time", FakeClock())
    assert main(["--config", str(config), "--out", str(run), "--resume", "auto", "--max-minutes", "1"]) == 0
    out = capsys.readouterr().out
    assert "time limit of 1 min reached: 3 of 100 steps" in out
    state = read_trainer_state(latest_checkpoint(run / "checkpoints"))
    assert state.step == 3 and state.elapsed_seconds == pytest.approx(70.0)
    assert json.loads((run / "config.json").read_text())["max_minutes"] == 1

    # other changed settings are still refused on resume
    assert main(["--config", str(config), "--out", str(run), "--resume", "auto", "optim.lr=1e-2"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_max_minutes_errors(token_data, tmp_path, capsys):
    config = _yaml(token_data, tmp_path)
    for value in ("0", "-1", "nan"):
        assert main(["--config", str(config), "--out", str(tmp_path / "run"), "--max-minutes", value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--max-minutes" in err


def test_data_option_replaces_the_datasets(token_data, tmp_path, capsys):
    config = _yaml(token_data, tmp_path, data={"datasets": [{"path": "/no/such/tokens", "weight": 3.0}]})
    run = tmp_path / "run"
    assert main(["--config", str(config), "--out", str(run), "--data", f"{token_data},{token_data}", "--stop-at", "1"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["datasets"] == [
        {"path": str(token_data), "weight": 1.0, "synthetic": False},
        {"path": str(token_data), "weight": 1.0, "synthetic": False},
    ]
    assert main(["--config", str(config), "--out", str(tmp_path / "run2"), "--data", " , "]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["--config", str(config), "--out", str(tmp_path / "run3"), "--data", str(tmp_path / "nope")]) == 2
    assert "token dataset not found" in capsys.readouterr().err
