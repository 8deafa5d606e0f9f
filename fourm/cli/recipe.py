"""``fourm-recipe``: one path from a folder of captioned images to a working bundle.

    fourm-recipe folder --root my_images --out runs/mine --minutes 60
    python -m fourm.cli.recipe folder --root my_images --out runs/mine --minutes 60

Imports the imagefolder (images + metadata.jsonl with a text column), trains an rgb tokenizer on
its images, picks a text vocabulary (the shipped one, or one trained on the captions when the
shipped one fragments them), tokenizes, trains a small FourM from scratch (rgb read as pixels,
predicted as tokens), bundles it and writes an evaluation report (``<out>/report.json``,
``<out>/report.png``). ``--minutes`` is split over the stages (the plan is printed first); a re-run
skips every stage whose output exists and whose inputs did not change. ``--size`` sets the image
side and, through one table (``fourm.recipe.config.SIZES``), the token grid, the pixel patches, the
batch sizes and the masking budgets.
"""

from __future__ import annotations

import argparse

from fourm.cli import ArgumentParser, bounded_int, device_name, finite_float, seed_int, subcommand_main
from fourm.errors import FourmError
from fourm.recipe.config import DEFAULT_SIZE, SIZES


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="fourm-recipe", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("folder", help="imagefolder -> tokenizers, trained FourM, bundle and report",
                       description=__doc__.split("\n\n")[2])
    p.add_argument("--root", required=True, help="imagefolder: images + metadata.jsonl with file_name and text columns")
    p.add_argument("--out", required=True, help="output folder (data/, tokenizers/, tokens/, train/, bundle/, "
                   "report.json, report.png); a re-run resumes it")
    p.add_argument("--minutes", type=finite_float, default=60.0, help="total time budget (default 60)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, metavar="|".join(str(s) for s in SIZES),
                   help="image side: " + "; ".join(f"{s} -> {sp.grid}x{sp.grid} rgb tokens, {sp.patch} px patches"
                                                   for s, sp in SIZES.items())
                   + f" (default {DEFAULT_SIZE})")
    p.add_argument("--overwrite", action="store_true",
                   help="redo an --out made at another --size (every stage runs again; without it that is refused)")
    p.add_argument("--modalities", default="rgb,caption",
                   help="rgb,caption plus any of edges,color_palette,metadata (derived from rgb; default rgb,caption)")
    p.add_argument("--split-column", default=None, metavar="NAME",
                   help="metadata.jsonl column holding train / val (default: train/ + val/ folders, else --val-fraction)")
    p.add_argument("--val-fraction", type=finite_float, default=0.1, help="held-out fraction without splits (default 0.1)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--text-threshold", type=finite_float, default=1.5,
                   help="train a caption vocabulary when the shipped one needs more than this many times the "
                   "tokens per caption (default 1.5)")
    p.add_argument("--tokenizer-epochs", type=finite_float, default=50.0,
                   help="rgb tokenizer steps = epochs x train images / batch, 300..the recipe's steps (default 50)")
    p.add_argument("--tokenizer-steps", type=bounded_int(1), default=None, help="exact tokenizer steps instead")
    p.add_argument("--epochs", type=finite_float, default=100.0,
                   help="FourM steps = epochs x train images / batch, 100..the train config's steps (default 100)")
    p.add_argument("--train-steps", type=bounded_int(1), default=None, help="exact FourM steps instead")
    p.add_argument("--device", type=device_name, default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # test shapes (tests/recipe)
    p.set_defaults(func=run_folder)
    return parser


def check_out(args: argparse.Namespace) -> None:
    """Refuse a bad ``--out`` (an input, or a folder the recipe did not write) before the images are
    read, so that this is the first thing a user hears about it."""
    from fourm.recipe.stages import COMMAND
    from fourm.utils.outputs import check_existing, check_inputs

    check_inputs(args.out, [("--root", args.root)])
    try:
        check_existing(args.out, COMMAND, recognize=lambda path: (path / "recipe.json").is_file())
    except FourmError:
        raise FourmError(
            f"--out {args.out} already exists and was not written by {COMMAND}; choose another --out (the recipe "
            "resumes only its own folders, --overwrite included: remove the folder yourself to replace it)"
        ) from None


def run_folder(args: argparse.Namespace) -> int:
    from fourm.recipe import RecipeConfig, run_recipe

    check_out(args)

    cfg = RecipeConfig(
        root=args.root, out=args.out, minutes=args.minutes, size=args.size, overwrite=args.overwrite,
        modalities=[m.strip() for m in args.modalities.split(",") if m.strip()],
        split_column=args.split_column, val_fraction=args.val_fraction, seed=args.seed,
        text_threshold=args.text_threshold, tokenizer_epochs=args.tokenizer_epochs,
        tokenizer_steps=args.tokenizer_steps, epochs=args.epochs, train_steps=args.train_steps,
        device=args.device, tiny=args.tiny,
    )  # fmt: skip
    run_recipe(cfg)
    return 0


main = subcommand_main(build_parser)


if __name__ == "__main__":
    raise SystemExit(main())
