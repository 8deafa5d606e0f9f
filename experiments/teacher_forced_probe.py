"""Does a FourM read its image input? Teacher-forced target losses of a validation task with the
true encoder input, with another sample's input, and with the image input mirrored left-right.

    python experiments/teacher_forced_probe.py --config configs/train/world_default.yaml \
        --model models/world-default --task rgb_to_all [--num 128]

A model that uses the image has a clearly lower loss with the true input than with the others
(issue 16: the 2026-12 default did not).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from fourm.core.batch import MultimodalBatch
from fourm.generation.bundle import MODEL_DIR
from fourm.model.fourm import FourM
from fourm.retrieval.settings import is_model_dir
from fourm.training.config import load_train_config
from fourm.training.data import build_training_data


def mirrored(batch: MultimodalBatch, model: FourM) -> MultimodalBatch:
    """Encoder image positions mirrored left-right (row r, column c -> column g - 1 - c)."""
    pos = batch.enc_position.clone()
    for i, m in enumerate(model.config.modalities.values()):
        if m.kind != "image":
            continue
        g = int(round(m.length**0.5))
        sel = (batch.enc_modality == i) & batch.enc_valid
        p = pos[sel]
        pos[sel] = (p // g) * g + (g - 1 - p % g)
    return dataclasses.replace(batch, enc_position=pos)


def shuffled(batch: MultimodalBatch) -> MultimodalBatch:
    """Every row's encoder input replaced by the next row's."""
    roll = lambda t: None if t is None else t.roll(1, dims=0)  # noqa: E731
    return dataclasses.replace(
        batch,
        enc_tokens=roll(batch.enc_tokens), enc_modality=roll(batch.enc_modality),
        enc_position=roll(batch.enc_position), enc_valid=roll(batch.enc_valid), enc_patches=roll(batch.enc_patches),
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/train/world_default.yaml")
    p.add_argument("--model", default="models/world-default",
                   help="model bundle (its model/ is probed; a FourM directory also works, deprecated)")
    p.add_argument("--task", default="rgb_to_all")
    p.add_argument("--num", type=int, default=128)
    p.add_argument("--data", default="data/world_model_tokens_v1", help="token dataset (default: the tokens the models were trained on)")
    args = p.parse_args()
    model_dir = Path(args.model)
    if is_model_dir(model_dir):
        print(f"warning: --model {model_dir} is a FourM model directory, not a bundle (deprecated; pass the bundle)",
              file=sys.stderr)
    else:
        model_dir = model_dir / MODEL_DIR
    model = FourM.from_pretrained(model_dir).eval()
    cfg = load_train_config(args.config)
    if args.data:
        cfg.data.datasets[0].path = args.data
    data = build_training_data(cfg, model.config.modalities)
    ds = data.val_tasks[args.task]
    batch = MultimodalBatch.collate([ds[i] for i in range(min(args.num, len(ds)))])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for label, b in (("true", batch), ("mirrored", mirrored(batch, model)), ("other sample", shuffled(batch))):
            _, per = model.loss(b)
            print(f"{label:>13}: " + "  ".join(f"{k} {v:.3f}" for k, v in sorted(per.items())))


if __name__ == "__main__":
    main()
