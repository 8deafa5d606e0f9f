"""``fourm-stem``: give a trained FourM a ``conv_image`` patch stem whose CNN path was pretrained to
see shapes (fourm.training.stem_pretrain).

    fourm-stem pretrain --model runs/default/model --data data/world_model --out runs/default_stem
    fourm-stem pretrain --model M --data D --out O --image-key rgb --labels-key semseg --steps 2500

The CNN path learns each patch's class shares from a raw dataset's images (``--image-key``) and class
maps (``--labels-key``, integer classes, 0 = background), with random patches withheld. The model is
written with the new stem (a linear stem becomes its linear path, the CNN path's output projection
starts at zero, so it computes what it did), ready for ``train.py`` with ``model.init_from``; beside
it ``stem_pretrain.json``: the settings, the losses, the object class accuracy of the stem's features on
held-out scenes. Written atomically; a non-empty --out that fourm-stem did not write needs --overwrite.
Pretraining saves its state in ``<out>.partial/`` every ``--save-every`` steps (100): an interrupted run started again with
the same inputs and settings resumes there and ends with the same weights (a changed model, dataset or
setting is refused, naming it; --overwrite starts over).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from fourm.cli import ArgumentParser, bounded_int, finite_float, friendly_errors, seed_int
from fourm.errors import FourmError

LOAD_CHUNK = 1000  # scenes read (and cast to uint8) at a time


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="fourm-stem", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pretrain", help="pretrain a conv_image stem's CNN path and give it to a trained FourM",
                       description=__doc__.split("\n\n")[2])
    p.add_argument("--model", required=True, help="a trained FourM (model, checkpoint or run directory)")
    p.add_argument("--data", required=True, help="raw dataset (fourm-data world / import) with images and class maps")
    p.add_argument("--out", required=True, help="where the model with the new stem is written")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out that fourm-stem did not write")
    p.add_argument("--modality", default=None, help="the pixel-patch modality (default: the model's only one)")
    p.add_argument("--image-key", default="rgb", help="image column of the dataset (default: rgb)")
    p.add_argument("--labels-key", default="semseg", help="class-map column, integer classes (default: semseg)")
    p.add_argument("--scenes", type=bounded_int(1), default=None, help="train scenes to read (default: all)")
    p.add_argument("--val-scenes", type=bounded_int(1), default=1000,
                   help="held-out scenes scored (the val split, else the last train scenes; default 1000)")
    p.add_argument("--steps", type=bounded_int(1), default=2500)
    p.add_argument("--batch-size", type=bounded_int(1), default=64)
    p.add_argument("--lr", type=finite_float, default=2e-3)
    p.add_argument("--background-weight", type=finite_float, default=0.1,
                   help="loss weight of a patch of background alone (patches with an object: 1)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--save-every", type=bounded_int(1), default=100,
                   help="steps between saves of the state an interrupted run resumes from (default 100)")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fourm.data.pretokenize import content_fingerprint, dataset_fingerprint
    from fourm.model import FourM
    from fourm.model.patch_stem import ImageConvStem
    from fourm.training.finetune import resolve_model_dir
    from fourm.training.stem_pretrain import (
        StemPretrainConfig,
        object_shape_accuracy,
        pretrain_image_stem,
        with_pretrained_stem,
    )
    from fourm.utils.atomic import atomic_dir
    from fourm.utils.outputs import claim_output, is_saved_model, partial_run

    config = StemPretrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                background_weight=args.background_weight, seed=args.seed)  # fmt: skip
    model_dir = resolve_model_dir(args.model)
    base = FourM.from_pretrained(model_dir)
    name = _patch_modality(base.config, args.modality)
    mod, c = base.config.modalities[name], base.config
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        stem = ImageConvStem(mod.patch_dim, c.dim, c.patch_channels, c.patch_stem_width, mod.length)
    side = stem.grid * stem.side
    train_images, train_labels, val_images, val_labels = load_scenes(
        args.data, args.image_key, args.labels_key, args.scenes, args.val_scenes, side, c.patch_channels
    )
    classes = int(max(train_labels.max(), val_labels.max())) + 1
    if classes < 2:
        raise FourmError(f"'{args.labels_key}' of {args.data} holds one class only (0): nothing to learn")
    print(f"{len(train_images)} train / {len(val_images)} held-out scenes, {classes} classes; modality {name}")
    with claim_output(args.out, "fourm-stem", [("model", model_dir), ("data", Path(args.data))], args.overwrite,
                      is_saved_model) as out:  # fmt: skip
        manifest = {
            "inputs": {"model": content_fingerprint(model_dir), "data": dataset_fingerprint(args.data)},
            "modality": name, "image_key": args.image_key, "labels_key": args.labels_key, "scenes": args.scenes,
            "val_scenes": args.val_scenes, "config": asdict(config),
        }  # fmt: skip
        with partial_run(out, manifest, start_over=args.overwrite) as partial:
            start = time.time()
            head, losses = pretrain_image_stem(stem, train_images, train_labels, classes, config,
                                               state_path=partial / "state.pt", save_every=args.save_every)  # fmt: skip
            minutes = (time.time() - start) / 60
            accuracy = object_shape_accuracy(stem, head, val_images, val_labels)
            model = with_pretrained_stem(base, {name: stem})
            last = float(np.mean(losses[-100:]))
            report = {
                "model": str(model_dir), "data": str(args.data), "modality": name, "image_key": args.image_key,
                "labels_key": args.labels_key, "classes": classes, "config": asdict(config),
                "train_scenes": len(train_images), "val_scenes": len(val_images), "minutes": minutes,
                "object_class_acc_val": accuracy, "loss_first": losses[0], "loss_last100": last,
                "losses_every_100": losses[::100],
            }  # fmt: skip
            with atomic_dir(out) as tmp:
                model.save_pretrained(tmp)
                (tmp / "stem_pretrain.json").write_text(json.dumps(report, indent=2))
    print(f"object class accuracy of the stem on held-out scenes: {accuracy:.3f} (loss {losses[0]:.3f} -> "
          f"{last:.3f}, {minutes:.1f} min); wrote {args.out}")
    return 0


def _patch_modality(config, wanted: str | None) -> str:
    patches = [n for n, m in config.modalities.items() if m.is_patches]
    if wanted is None:
        if len(patches) != 1:
            found = ", ".join(patches) or "none"
            raise FourmError(f"the model has {len(patches)} pixel-patch modalities ({found}); name one with --modality")
        return patches[0]
    if wanted not in patches:
        raise FourmError(f"--modality {wanted} is not a pixel-patch modality of the model ({', '.join(patches) or 'none'})")
    return wanted


def load_scenes(
    data: str, image_key: str, labels_key: str, scenes: int | None, val_scenes: int, side: int, channels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(S, side, side, C) uint8 images and (S, side, side) uint8 class maps of the train split (first
    ``scenes``), and of ``val_scenes`` held-out ones (the val split, else the last train scenes)."""
    from fourm.data.raw_dataset import load_raw_dataset

    dataset = load_raw_dataset(data)
    if "train" not in dataset:
        raise FourmError(f"dataset {data} has no 'train' split (splits: {', '.join(dataset)})")
    train = dataset["train"]
    for key in (image_key, labels_key):
        if key not in train.column_names:
            raise FourmError(f"dataset {data} has no '{key}' column (columns: {', '.join(train.column_names)})")
    n = len(train) if scenes is None else min(scenes, len(train))
    if "val" in dataset and len(dataset["val"]):
        held, held_n = dataset["val"], min(val_scenes, len(dataset["val"]))
        held_range = range(held_n)
    else:
        if len(train) < 2:
            raise FourmError(f"dataset {data} has {len(train)} train scenes and no val split: too few to hold any out")
        held_n = min(val_scenes, len(train) // 5 or 1)
        held, held_range, n = train, range(len(train) - held_n, len(train)), min(n, len(train) - held_n)
    if n < 1:
        raise FourmError(f"dataset {data} has no train scenes to learn from")
    images, labels = _read(train, range(n), image_key, labels_key)
    val_images, val_labels = _read(held, held_range, image_key, labels_key)
    for what, arr in (("images", images), ("class maps", labels)):
        if arr.shape[1:3] != (side, side):
            raise FourmError(f"'{image_key if what == 'images' else labels_key}' {what} of {data} are "
                             f"{arr.shape[1]}x{arr.shape[2]}; the model's patch stem reads {side}x{side}")  # fmt: skip
    if images.ndim != 4 or images.shape[-1] != channels:
        raise FourmError(f"'{image_key}' of {data} has shape {tuple(images.shape[1:])}; expected ({side}, {side}, {channels})")
    if labels.ndim != 3:
        raise FourmError(f"'{labels_key}' of {data} has shape {tuple(labels.shape[1:])}; expected a class map ({side}, {side})")
    return images, labels, val_images, val_labels


def _read(split, rows: range, image_key: str, labels_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    view = split.with_format("numpy", columns=[image_key, labels_key])
    images, labels = [], []
    for start in range(rows.start, rows.stop, LOAD_CHUNK):
        chunk = view[start : min(start + LOAD_CHUNK, rows.stop)]
        lab = np.asarray(chunk[labels_key])
        if not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() > 255:
            raise FourmError(f"'{labels_key}' must hold integer classes 0..255, got {lab.dtype} "
                             f"{lab.min()}..{lab.max()}")  # fmt: skip
        img = np.asarray(chunk[image_key])
        if not np.issubdtype(img.dtype, np.integer) or img.min() < 0 or img.max() > 255:
            raise FourmError(f"'{image_key}' must hold 8-bit pixel values 0..255, got {img.dtype} {img.min()}..{img.max()}")
        images.append(img.astype(np.uint8))
        labels.append(lab.astype(np.uint8))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


if __name__ == "__main__":
    raise SystemExit(main())
