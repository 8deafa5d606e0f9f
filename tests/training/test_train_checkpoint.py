"""Checkpoints: atomic writes, keep-last-K, the latest pointer, RNG states, corrupt files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fourm.errors import FourmError
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.training.checkpoint import (
    CheckpointParts,
    TrainerState,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    resolve_resume,
    save_checkpoint,
)
from fourm.training.config import OptimConfig
from fourm.training.optim import WarmupCosine, build_optimizer
from fourm.utils.rng import rng_state, set_rng_state


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    mods = {"rgb": ModalityConfig("image", 16, 4), "caption": ModalityConfig("sequence", 12, 6)}
    model = FourM(FourMConfig.preset("tiny", mods, dim=16, enc_depth=1, dec_depth=1, num_heads=2))
    opt = build_optimizer(model, OptimConfig(lr=1e-2, warmup_steps=0))
    sched = WarmupCosine(opt, OptimConfig(lr=1e-2, warmup_steps=0), total_steps=10)
    parts = CheckpointParts(
        save_model=model.save_pretrained,
        optimizer=opt,
        scheduler=sched,
        load_model=lambda path: load_model_weights(model, path),
    )
    return model, opt, sched, parts


def _take_step(model, opt, sched):
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    sched.step()


def test_save_and_load_restore_everything(tmp_path):
    model, opt, sched, parts = _setup(0)
    _take_step(model, opt, sched)
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    state = TrainerState(step=1, epoch=2, samples_in_epoch=8, samples_seen=40)
    path = save_checkpoint(tmp_path, state, parts, keep=2)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    saved_weights = {k: v.clone() for k, v in model.state_dict().items()}
    saved_adam = {k: v.clone() for k, v in opt.state_dict()["state"][0].items()}

    model2, opt2, sched2, parts2 = _setup(1)  # different init, fresh optimizer, other RNG
    loaded = load_checkpoint(path, parts2)
    assert loaded == state
    assert all(torch.equal(model2.state_dict()[k], v) for k, v in saved_weights.items())
    for k, v in opt2.state_dict()["state"][0].items():
        assert torch.equal(v, saved_adam[k])
    assert sched2.last_epoch == 1 and opt2.param_groups[0]["lr"] == pytest.approx(sched.get_last_lr()[0])
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1), expected[2])
    assert FourM.from_pretrained(path / "model").state_dict().keys() == saved_weights.keys()  # standalone model


def test_rng_state_round_trip():
    state = rng_state()
    first = (random.random(), np.random.normal(), torch.randn(3))
    set_rng_state(state)
    again = (random.random(), np.random.normal(), torch.randn(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_keep_last_k_and_latest_pointer(tmp_path):
    model, opt, sched, parts = _setup()
    run = tmp_path / "run"
    assert resolve_resume("auto", run) is None  # nothing saved yet: a fresh start
    root = run / "checkpoints"
    for step in (2, 4, 6, 8):
        save_checkpoint(root, TrainerState(step=step), parts, keep=2)
    assert [p.name for p in list_checkpoints(root)] == ["step_00000006", "step_00000008"]
    assert (root / "latest").read_text().strip() == "step_00000008"
    assert latest_checkpoint(root).name == "step_00000008"
    assert resolve_resume("auto", run).name == "step_00000008"
    assert resolve_resume(str(run), "unused").name == "step_00000008"  # a run directory
    assert resolve_resume(str(root / "step_00000006"), "unused").name == "step_00000006"
    assert resolve_resume(None, run) is None


def test_crash_while_saving_keeps_previous_checkpoint(tmp_path):
    model, opt, sched, parts = _setup()
    good = save_checkpoint(tmp_path, TrainerState(step=5), parts, keep=3)
    good_bytes = (good / "model" / "model.safetensors").read_bytes()
    _take_step(model, opt, sched)

    def crash_half_way(path):
        model.save_pretrained(path)  # the weights are written ...
        raise RuntimeError("killed while saving")  # ... then the process dies

    parts.save_model = crash_half_way
    with pytest.raises(RuntimeError, match="killed"):
        save_checkpoint(tmp_path, TrainerState(step=10), parts, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000005"]  # no half checkpoint left
    assert latest_checkpoint(tmp_path) == good
    assert (good / "model" / "model.safetensors").read_bytes() == good_bytes
    _, _, _, parts2 = _setup(3)
    assert load_checkpoint(good, parts2).step == 5


def test_latest_falls_back_when_pointer_is_stale(tmp_path):
    model, opt, sched, parts = _setup()
    save_checkpoint(tmp_path, TrainerState(step=3), parts, keep=3)
    (tmp_path / "latest").write_text("step_00000099\n")  # points at nothing
    assert latest_checkpoint(tmp_path).name == "step_00000003"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "model" / "model.safetensors").write_bytes(b"not safetensors"), "corrupt checkpoint file"),
        (lambda p: (p / "optimizer.pt").write_bytes(b"\x00garbage"), "corrupt checkpoint file"),
        (lambda p: (p / "trainer_state.json").write_text("{broken"), "corrupt checkpoint file"),
        (lambda p: (p / "trainer_state.json").write_text('{"step": "x"}'), "corrupt checkpoint file"),
        (lambda p: (p / "scheduler.pt").unlink(), "scheduler.pt is missing"),
    ],
    ids=["weights", "optimizer", "state-json", "state-type", "missing"],
)
def test_corrupt_checkpoint_is_a_one_line_error(tmp_path, damage, message):
    model, opt, sched, parts = _setup()
    path = save_checkpoint(tmp_path, TrainerState(step=1), parts, keep=1)
    damage(path)
    with pytest.raises(FourmError, match=message) as info:
        load_checkpoint(path, _setup()[3])
    assert "\n" not in str(info.value)


def test_checkpoint_of_another_model_is_rejected(tmp_path):
    model, opt, sched, parts = _setup()
    path = save_checkpoint(tmp_path, TrainerState(step=1), parts, keep=1)
    other = FourM(FourMConfig.preset("tiny", {"rgb": ModalityConfig("image", 16, 4)}, dim=16, enc_depth=1,
                                     dec_depth=1, num_heads=2))
    with pytest.raises(FourmError, match="do not match the model"):
        load_model_weights(other, path / "model")


def test_resume_path_errors(tmp_path):
    with pytest.raises(FourmError, match="checkpoint not found"):
        resolve_resume(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FourmError, match="is not a checkpoint"):
        resolve_resume(str(tmp_path / "empty"), tmp_path)
