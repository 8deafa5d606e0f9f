"""The training loop: logs, validation, final model, NaN stop, bad input."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from training_testing import tiny_config

from fourm.errors import FourmError
from fourm.model import FourM
from fourm.training import TrainingDiverged, train
from fourm.training.optim import lr_at


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_logs_validation_and_final_model(token_data, tmp_path):
    cfg = tiny_config(token_data, tmp_path / "run", steps=6, log_every=2, eval_every=3, tensorboard=True)
    result = train(cfg)
    run = tmp_path / "run"
    rows = read_csv(run / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert set(rows[0]) == {
        "step", "epoch", "loss", "loss_rgb", "loss_depth", "loss_caption", "lr", "grad_norm", "tokens_per_s",
        "samples_seen",
    }
    for r in rows:
        assert math.isfinite(float(r["loss"])) and float(r["tokens_per_s"]) > 0 and float(r["grad_norm"]) > 0
        step = int(r["step"])
        assert float(r["lr"]) == pytest.approx(lr_at(step - 1, 3e-3, 1e-4, 2, 6), rel=1e-5)  # lr of that step
        assert int(r["samples_seen"]) == 4 * step
        per_mod = [float(r[f"loss_{m}"]) for m in ("rgb", "depth", "caption")]
        assert min(per_mod) <= float(r["loss"]) <= max(per_mod)  # the loss is their mean over micro-batches
    val = read_csv(run / "val.csv")
    assert [int(r["step"]) for r in val] == [3, 6]
    for r in val:
        per_mod = [float(r[f"val_loss_{m}"]) for m in ("rgb", "depth", "caption")]
        assert float(r["val_loss"]) == pytest.approx(sum(per_mod) / 3, rel=1e-4)
    assert result.val["val_loss"] == pytest.approx(float(val[-1]["val_loss"]), rel=1e-4)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_caption", "train/lr", "train/tokens_per_s", "val/val_loss"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]

    saved = FourM.from_pretrained(result.final_model)  # the generation code's entry point
    assert all(torch.equal(saved.state_dict()[k], v) for k, v in result.model.state_dict().items())
    assert (run / "config.json").is_file() and (run / "checkpoints" / "step_00000006").is_dir()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(token_data, tmp_path, monkeypatch):
    real_loss = FourM.loss
    calls = {"n": 0}

    def loss_goes_nan_at_step_5(self, batch):
        loss, per_modality = real_loss(self, batch)
        calls["n"] += 1
        return (loss * float("nan"), per_modality) if calls["n"] >= 5 else (loss, per_modality)

    monkeypatch.setattr(FourM, "loss", loss_goes_nan_at_step_5)
    cfg = tiny_config(token_data, tmp_path / "run", steps=8, checkpoint_every=2)
    ckpts = tmp_path / "run" / "checkpoints"
    with pytest.raises(TrainingDiverged) as info:
        train(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert "the loss is nan at step 5" in message and "step_00000004" in message
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_00000002", "step_00000004"]
    assert (ckpts / "latest").read_text().strip() == "step_00000004"
    assert not (tmp_path / "run" / "model").exists()  # no final model from a diverged run
    # the last good checkpoint holds finite weights and resumes cleanly once the loss is sane again
    good = FourM.from_pretrained(ckpts / "step_00000004" / "model")
    assert all(torch.isfinite(v).all() for v in good.state_dict().values())
    monkeypatch.setattr(FourM, "loss", real_loss)
    assert train(cfg, resume="auto").step == 8


def test_existing_run_needs_resume_and_stop_at_checkpoints(token_data, tmp_path):
    cfg = tiny_config(token_data, tmp_path / "run", steps=4)
    stopped = train(cfg, stop_at=2)
    assert stopped.checkpoint.name == "step_00000002" and stopped.final_model is None
    with pytest.raises(FourmError, match="already holds checkpoints"):
        train(cfg)
    done = train(cfg, resume="auto")
    assert done.step == 4 and done.final_model.is_dir()
    again = train(cfg, resume="auto")  # nothing left to do
    assert again.step == 4 and again.checkpoint.name == "step_00000004"


def test_init_from_a_saved_model(token_data, tmp_path):
    first = train(tiny_config(token_data, tmp_path / "a", steps=2))
    cfg = tiny_config(token_data, tmp_path / "b", steps=1, model={"init_from": str(first.final_model), "overrides": {}},
                      optim={"lr": 1e-12, "min_lr": 0.0, "warmup_steps": 0})
    second = train(cfg)
    start = FourM.from_pretrained(first.final_model).state_dict()
    for key, value in second.model.state_dict().items():  # a negligible step away from the initial weights
        assert torch.allclose(value, start[key], atol=1e-6), key


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"data": {"datasets": [{"path": "/nonexistent/tokens"}]}}, "token dataset not found: /nonexistent/tokens"),
        ({"data": {"modalities": ["rgb", "lidar"]}}, "unknown modality 'lidar'"),
        ({"model": {"preset": "huge"}}, "unknown model preset 'huge'"),
        ({"model": {"overrides": {"width": 8}}}, "unknown config field 'width'"),
        ({"batch_size": 64}, "fewer than one global batch"),
        ({"masking": {"train": "configs/masking/nope.yaml"}}, "config file not found"),
    ],
    ids=["missing-dataset", "unknown-modality", "preset", "model-field", "batch", "masking-file"],
)
def test_bad_input_is_a_one_line_error(token_data, tmp_path, changes, message):
    cfg = tiny_config(token_data, tmp_path / "run", **changes)
    with pytest.raises(FourmError, match=message) as info:
        train(cfg)
    assert "\n" not in str(info.value)


def test_grad_accumulation_and_bf16_autocast(token_data, tmp_path):
    cfg = tiny_config(token_data, tmp_path / "run", steps=3, grad_accum=2, precision="bf16")
    result = train(cfg)
    optimizer = torch.load(result.checkpoint / "optimizer.pt", weights_only=True)
    assert {float(s["step"]) for s in optimizer["state"].values()} == {3.0}  # one AdamW step per 2 micro-batches
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert [int(r["samples_seen"]) for r in rows] == [8, 16, 24]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert all(v.dtype == torch.float32 for v in result.model.state_dict().values() if v.is_floating_point())


def test_validation_tasks_are_logged_per_task(token_data, tmp_path, capsys):
    dropout = tmp_path / "dropout.yaml"  # training with condition dropout: empty encoders in some rows
    dropout.write_text(
        "input_budget: 16\ntarget_budget: 16\nmixture:\n  - name: caption_to_rgb\n    input_alpha: 0.0\n"
        "    input_alphas: {caption: 1.0}\n    drop_inputs_probability: 0.5\n  - name: all\n"
    )
    tasks = {
        "caption_to_rgb": "configs/masking/eval/caption_to_rgb.yaml",
        "caption_to_bboxes": "configs/masking/eval/caption_to_bboxes.yaml",
        "rgb_to_all": "configs/masking/eval/rgb_to_all.yaml",
    }
    cfg = tiny_config(
        token_data, tmp_path / "run", steps=3, eval_every=3, tensorboard=True,
        masking={"train": str(dropout), "eval_tasks": tasks},
    )  # fmt: skip
    result = train(cfg)
    assert "validation task caption_to_bboxes skipped" in capsys.readouterr().out
    (row,) = read_csv(tmp_path / "run" / "val.csv")
    assert "val/caption_to_bboxes/loss" not in row
    assert math.isfinite(float(row["val_loss"]))  # masking.eval as before
    assert float(row["val/caption_to_rgb/loss"]) == pytest.approx(float(row["val/caption_to_rgb/loss_rgb"]))
    assert row["val/caption_to_rgb/loss_caption"] == "" and row["val/caption_to_rgb/loss_depth"] == ""  # not targets
    assert row["val/rgb_to_all/loss_rgb"] == "" and math.isfinite(float(row["val/rgb_to_all/loss_depth"]))
    assert result.val["val/caption_to_rgb/loss_rgb"] == pytest.approx(float(row["val/caption_to_rgb/loss_rgb"]), rel=1e-4)
    assert result.val["val/caption_to_rgb/loss_rgb"] != pytest.approx(result.val["val_loss_rgb"])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/val_loss", "val/caption_to_rgb/loss_rgb", "val/rgb_to_all/loss"} <= tags
    assert not any(t.startswith("val/val/") for t in tags)
