"""``python train.py``: train a FourM model from a YAML config.

    python train.py --config configs/train/debug.yaml [optim.lr=3e-4 batch_size=8 ...]
                    [--resume auto|PATH] [--out DIR] [--stop-at STEP] [--max-minutes M]
                    [--data data/mine_tokens[,data/other_tokens]]
    python train.py --config configs/train/finetune_caption_embedding.yaml --init-from models/world-default/model \
                    --add-modality configs/modalities/extra/caption_embedding.yaml      # fine-tune with a new modality
    accelerate launch --config_file configs/accelerate/ddp_cpu.yaml train.py --config ...
    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml train.py --config ...
"""

from __future__ import annotations

import argparse

from fourm.cli import ArgumentParser, finite_float, friendly_errors
from fourm.errors import FourmError


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="train.py",
        description="Train a FourM any-to-any model on pre-tokenized datasets (accelerate loop).",
    )
    parser.add_argument("--config", required=True, help="training config YAML (e.g. configs/train/debug.yaml)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4 steps=2000"
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="auto|PATH",
        help="'auto': continue from the run's latest checkpoint (if any); PATH: a checkpoint or run directory. "
        "Overrides that change the run (anything but log_every, eval_every, eval_batches, checkpoint_every, "
        "keep_checkpoints, output_dir, num_workers, tensorboard, deepspeed_config, max_minutes, compile) are refused on resume, "
        "naming them: config.json keeps describing the run",
    )
    parser.add_argument(
        "--out", default=None,
        help="run directory (overrides output_dir); refused if it is a non-empty folder that train.py did not "
        "create (unless --overwrite), if it is or overlaps a dataset / --init-from, or while another train.py "
        "writes it",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true",
        help="train into a non-empty --out that train.py did not create (its other files are left in place)",
    )  # fmt: skip
    parser.add_argument(
        "--stop-at", type=int, default=None, metavar="STEP", help="stop after STEP steps, saving a checkpoint"
    )
    parser.add_argument(
        "--max-minutes", type=finite_float, default=None, metavar="M",
        help="wall-time cap: stop after M minutes of training (counted over resumes), saving a checkpoint and "
        "the final model; the cosine LR schedule follows max(step / steps, elapsed / M) (sets max_minutes). "
        "A resume without it keeps the run's cap; with it, M is the run's new total budget",
    )  # fmt: skip
    parser.add_argument(
        "--data", default=None, metavar="PATH[,PATH...]",
        help="token dataset(s) (fourm-data tokenize outputs) to train on instead of the config's data.datasets, "
        "weight 1 each",
    )  # fmt: skip
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="PATH",
        help="start from a trained model (save_pretrained dir, checkpoint or run dir); sets model.init_from",
    )
    parser.add_argument(
        "--add-modality",
        action="append",
        default=[],
        metavar="YAML",
        help="append a new modality (registry YAML) to the --init-from model; repeatable; sets model.add_modalities",
    )
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load and validate the config, train; errors -> one ``error:`` line."""
    args = build_parser().parse_args(argv)
    from fourm.training.config import load_train_config
    from fourm.training.loop import train

    if args.max_minutes is not None and not args.max_minutes > 0:
        raise FourmError(f"--max-minutes must be > 0, got {args.max_minutes:g}")
    datasets = None
    if args.data is not None:
        datasets = [p.strip() for p in args.data.split(",") if p.strip()]
        if not datasets:
            raise FourmError(f"--data {args.data!r} names no dataset (expected PATH[,PATH...])")
    cfg = load_train_config(
        args.config, args.overrides, output_dir=args.out, init_from=args.init_from, add_modalities=args.add_modality,
        datasets=datasets, max_minutes=args.max_minutes,
    )  # fmt: skip
    if cfg.model.add_modalities:  # read them now, not after the data and the model are built
        from fourm.training.finetune import load_added_modalities

        load_added_modalities(cfg.model.add_modalities)
    result = train(cfg, resume=args.resume, stop_at=args.stop_at, overwrite=args.overwrite)
    if not result.is_main:
        return 0
    if result.timed_out and result.final_model is not None:
        print(
            f"time limit of {cfg.max_minutes:g} min reached: {result.step} of {cfg.steps} steps, "
            f"model saved to {result.final_model} (checkpoint {result.checkpoint})"
        )
    elif result.final_model is not None:
        print(f"done: {result.step} steps, model saved to {result.final_model}")
    else:
        print(f"stopped at step {result.step}, checkpoint {result.checkpoint} (resume with --resume auto)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
