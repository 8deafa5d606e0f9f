"""A seconds-long training run with continuous modalities (fourm.model.continuous): a regressed and a
diffusion-head vector beside a token modality, through the data, masking, loop, validation and save."""

from __future__ import annotations

import csv
import math

import numpy as np
import torch
from training_testing import tiny_config

from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset
from fourm.model import FourM
from fourm.training import train


def _rows(n: int, rng: np.random.Generator) -> list[dict]:
    rows = []
    for _ in range(n):
        rgb = rng.integers(0, 32, 16)
        vec = np.bincount(rgb // 4, minlength=8).astype(np.float32) / 16  # a function of the image
        rows.append({"rgb": rgb, "vec": vec, "vec_dh": vec})
    return rows


def test_training_with_continuous_targets(tmp_path):
    info = TokenDatasetInfo(
        modalities={
            "rgb": ModalityTokens("image", 32, 16),
            "vec": ModalityTokens("vector", 1, 1, value_dim=8),
            "vec_dh": ModalityTokens("vector", 1, 1, value_dim=8),
        }
    )
    rng = np.random.default_rng(0)
    data = write_token_dataset(tmp_path / "tokens", {"train": _rows(32, rng), "val": _rows(8, rng)}, info)
    cfg = tiny_config(
        data, tmp_path / "run", steps=4, log_every=2, eval_every=2,
        model={"value_heads": {"vec_dh": {"value_head": "diffusion", "value_scale": 2.0}}},
    )  # fmt: skip
    result = train(cfg)
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"loss_vec", "loss_vec_dh", "loss_rgb"} <= set(rows[0])
    assert all(math.isfinite(float(r["loss_vec"])) for r in rows if r["loss_vec"])
    saved = FourM.from_pretrained(result.final_model)
    assert (
        saved.config.modalities["vec"].value_dim == 8
        and saved.config.modalities["vec_dh"].value_head == "diffusion"
    )
    assert sorted(saved.value_heads) == ["vec", "vec_dh"]
    assert all(torch.equal(saved.state_dict()[k], v) for k, v in result.model.state_dict().items())
