"""The phases of ``train_image_tokenizer``, each on its own: budget, schedules, batches, one step, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fourm.errors import FourmError
from fourm.testing.tokenizers import toy_config
from tokenizers_zoo.image.config import TrainConfig
from tokenizers_zoo.image.trainer import (
    BEST_DIR,
    METRICS_FILE,
    TrainingLog,
    _lr_factor,
    apply_schedules,
    evaluate_and_save,
    finish_training,
    gumbel_temperature,
    sample_batch,
    schedule_progress,
    setup_training,
    train_step,
    training_budget,
)


def toy(*overrides: str):
    return toy_config(
        "rgb",
        "train.batch_size=4",
        "train.warmup_steps=2",
        "train.lr=0.003",
        "quantizer.kmeans_init=false",
        *overrides,
    )


def arrays(n: int = 6, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_training_budget_overrides_and_limits():
    tc = TrainConfig(steps=100, max_minutes=2.0)
    assert training_budget(tc) == (100, 120.0)
    assert training_budget(tc, steps=7, max_minutes=0.5) == (7, 30.0)
    assert training_budget(TrainConfig(steps=3)) == (3, None)  # no time limit
    assert training_budget(tc, max_minutes=0) == (100, None)  # 0 minutes: no limit either
    with pytest.raises(FourmError, match=">= 1, got 0"):
        training_budget(tc, steps=0)


def test_schedule_progress_is_the_larger_of_steps_and_time():
    assert schedule_progress(25, 100, elapsed=1000.0, budget_s=None) == 0.25
    assert schedule_progress(25, 100, elapsed=30.0, budget_s=60.0) == 0.5
    assert schedule_progress(80, 100, elapsed=30.0, budget_s=60.0) == 0.8


def test_gumbel_temperature_is_exponential_and_clipped():
    assert gumbel_temperature(1.0, 1 / 16, 0.0) == 1.0
    assert gumbel_temperature(1.0, 1 / 16, 0.5) == pytest.approx(0.25)
    assert gumbel_temperature(1.0, 1 / 16, 3.0) == pytest.approx(1 / 16)


def test_apply_schedules_sets_lr_and_gumbel_temperature():
    cfg = toy("quantizer.kind=gumbel", "quantizer.temperature=1.0", "train.gumbel_temperature_end=0.25")
    setup = setup_training(cfg, arrays())
    lr = apply_schedules(setup, cfg, progress=0.5, step=10)
    assert lr == pytest.approx(cfg.train.lr * _lr_factor(0.5, 10, 2, cfg.train.min_lr_ratio))
    assert all(group["lr"] == lr for group in setup.optimizer.param_groups)
    assert setup.tokenizer.quantizer.temperature == pytest.approx(0.5)
    assert apply_schedules(setup, cfg, progress=0.0, step=0) == pytest.approx(cfg.train.lr / 2)  # warm-up


def test_sample_batch_draws_preprocessed_images_reproducibly():
    cfg = toy("train.hflip=false")
    setup = setup_training(cfg, arrays())
    data = arrays()
    batch = sample_batch(
        setup.tokenizer, data, cfg.train, np.random.default_rng(3), torch.Generator().manual_seed(0)
    )
    idx = np.random.default_rng(3).integers(0, len(data), cfg.train.batch_size)
    torch.testing.assert_close(batch, setup.tokenizer.preprocess(data[idx]))
    flipped_cfg = toy("train.hflip=true")
    again = sample_batch(
        setup.tokenizer, data, flipped_cfg.train, np.random.default_rng(3), torch.Generator().manual_seed(0)
    )
    assert again.shape == batch.shape
    for a, b in zip(again, batch):  # every image is either itself or its mirror
        assert torch.equal(a, b) or torch.equal(a, b.flip(-1))


def test_train_step_updates_weights_and_refuses_a_non_finite_loss():
    cfg = toy()
    setup = setup_training(cfg, arrays())
    images = setup.tokenizer.preprocess(arrays()[:4])
    before = [p.detach().clone() for p in setup.tokenizer.parameters()]
    loss, logs = train_step(setup, images, step=0, grad_clip=1.0)
    assert isinstance(loss, float) and np.isfinite(loss) and "recon" in logs
    assert any(not torch.equal(a, p) for a, p in zip(before, setup.tokenizer.parameters()))

    setup.step_module = lambda images, step: (torch.tensor(float("nan")), {})
    kept = [p.detach().clone() for p in setup.tokenizer.parameters()]
    with pytest.raises(FourmError, match="diverged at step 5"):
        train_step(setup, images, step=5, grad_clip=1.0)
    assert all(torch.equal(a, p) for a, p in zip(kept, setup.tokenizer.parameters()))


def test_evaluate_and_save_records_rows_and_keeps_the_best(tmp_path):
    cfg = toy("train.eval_every=2")
    setup = setup_training(cfg, arrays())
    log = TrainingLog(losses=[4.0, 3.0, 2.0])
    row = evaluate_and_save(setup, cfg, arrays(4), log, step=3, out_dir=tmp_path)
    assert row["step"] == 3 and row["train_loss"] == pytest.approx(2.5)  # mean of the last eval_every losses
    assert log.history == [row] and log.best is row
    assert (tmp_path / BEST_DIR / "model.safetensors").is_file()
    saved = json.loads((tmp_path / METRICS_FILE).read_text())
    assert saved["best"]["step"] == 3 and saved["steps"] == 3

    log.best = {**row, "psnr": row["psnr"] + 100}  # an earlier, better row stays the best
    evaluate_and_save(setup, cfg, arrays(4), log, step=4, out_dir=tmp_path)
    assert log.best["step"] == 3 and len(log.history) == 2

    result = finish_training(setup, cfg, log, tmp_path)
    assert result["losses"] == [4.0, 3.0, 2.0] and result["final"]["step"] == 4
    assert (tmp_path / "last" / "model.safetensors").is_file()
