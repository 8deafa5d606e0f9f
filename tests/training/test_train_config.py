"""TrainConfig: shipped configs, overrides, validation errors naming the field, DeepSpeed autos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fourm.errors import FourmError
from fourm.training.config import TrainConfig, load_train_config, resolve_path
from fourm.training.loop import fill_deepspeed_config

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", [
    "configs/train/debug.yaml", "configs/train/world_tiny.yaml", "configs/train/world_default.yaml",
    "configs/train/world_default_continued.yaml", "configs/train/world_default_captions.yaml",
    "configs/train/finetune_caption_embedding.yaml", "experiments/configs/train/finetune_caption_embedding_target_only.yaml",
    "experiments/configs/train/finetune_pixels_caption_embedding.yaml", "experiments/configs/train/world_pixels.yaml",
    "experiments/configs/train/world_pixels_embedding.yaml",
])
def test_shipped_train_configs_load(path):
    cfg = load_train_config(path)
    assert cfg.steps > cfg.optim.warmup_steps and cfg.data.datasets
    for path in (cfg.masking.train, cfg.masking.eval):
        assert resolve_path(path).is_file()


def test_overrides_and_output_dir(tmp_path):
    cfg = load_train_config(
        REPO_ROOT / "configs/train/debug.yaml",
        ["optim.lr=3e-4", "batch_size=8", "model.overrides.dim=32", "optim.betas=[0.8, 0.9]"],
        output_dir=str(tmp_path / "out"),
    )
    assert cfg.optim.lr == 3e-4 and cfg.batch_size == 8 and cfg.model.overrides["dim"] == 32
    assert cfg.optim.betas == (0.8, 0.9) and cfg.output_dir == str(tmp_path / "out")
    cfg.save_json(tmp_path / "c.json")
    assert TrainConfig.from_file(tmp_path / "c.json") == cfg  # the saved resolved config reloads as is


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=1", "unknown config field 'optim.lrr'"),
        ("precision=fp16", "invalid value for 'precision': 'fp16'"),
        ("batch_size=0", "batch_size must be >= 1, got 0"),
        ("optim.warmup_steps=100000", "optim.warmup_steps (100000) must be <= steps"),
        ("optim.min_lr=1.0", "optim.min_lr must be in [0, lr="),
        ("grad_clip=-1", "grad_clip must be > 0 or null"),
        ("data.datasets=[]", "data.datasets is empty"),
        ("steps=many", "invalid value for 'steps'"),
        ("nonsense", "malformed override 'nonsense'"),
    ],
)
def test_bad_values_are_one_line_errors(override, message):
    with pytest.raises(FourmError) as info:
        load_train_config("configs/train/debug.yaml", [override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_accelerate_and_deepspeed_configs_are_consistent():
    ddp = yaml.safe_load((REPO_ROOT / "configs/accelerate/ddp_cpu.yaml").read_text())
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["num_processes"] == 2  # torchrun launcher; gloo on CPU
    zero = yaml.safe_load((REPO_ROOT / "configs/accelerate/deepspeed_zero2.yaml").read_text())
    ds_file = REPO_ROOT / zero["deepspeed_config"]["deepspeed_config_file"]
    ds = json.loads(ds_file.read_text())
    assert ds["zero_optimization"]["stage"] == 2 and "optimizer" not in ds  # fourm passes torch AdamW
    cfg = load_train_config("configs/train/debug.yaml", ["batch_size=4", "grad_accum=3", "grad_clip=0.5"])
    fill_deepspeed_config(ds, cfg, num_processes=2)
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 3
    assert ds["train_batch_size"] == 24 and ds["gradient_clipping"] == 0.5
    with pytest.raises(FourmError, match="DeepSpeed config sets train_micro_batch_size_per_gpu=4"):
        fill_deepspeed_config(ds, load_train_config("configs/train/debug.yaml", ["batch_size=8"]), 2)


def test_resolve_path_prefers_existing_local_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_path("configs/masking/mixture.yaml").resolve() == (REPO_ROOT / "configs/masking/mixture.yaml").resolve()
    (tmp_path / "configs/masking").mkdir(parents=True)
    (tmp_path / "configs/masking/mixture.yaml").write_text("input_budget: 8\n")
    assert resolve_path("configs/masking/mixture.yaml") == Path("configs/masking/mixture.yaml")
