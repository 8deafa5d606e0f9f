"""``fourm-data world``: render the procedural multimodal world into a raw dataset (train/val splits).

fourm-data world --out data/world --num 2000 [--size 64] [--seed 0] [--val-fraction 0.1] [--workers 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fourm.cli import MAX_IMAGE_SIDE, bounded_int, fraction
from fourm.errors import FourmError
from fourm.utils.outputs import claim_output, is_raw_dataset


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``world`` sub-command to an argparse sub-parser group (sets ``func``)."""
    parser = subparsers.add_parser(
        "world",
        help="render the procedural multimodal world into a raw dataset",
        description="Render scenes of coloured shapes with every modality (rgb, depth, semseg, normals, "
        "edges, caption, bboxes, metadata, color_palette) into a train/val raw dataset.",
    )
    parser.add_argument(
        "--out", type=Path, required=True,
        help="output dataset directory (replaced atomically once complete; refused if it is a folder or "
        "file this command did not write, unless --overwrite)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    parser.add_argument("--num", type=bounded_int(1, 100_000_000), required=True, help="total number of samples (train + val)")
    parser.add_argument(
        "--size", type=bounded_int(1, MAX_IMAGE_SIDE), default=None,
        help=f"image side in pixels (default 64, or the --config's; at most {MAX_IMAGE_SIDE})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="world seed: sample i is fully determined by (seed, i)"
    )
    parser.add_argument(
        "--val-fraction", type=fraction, default=0.1, help="fraction of samples in the val split"
    )
    parser.add_argument("--workers", type=bounded_int(0, 256), default=2, help="rendering processes (0 or 1: in-process)")
    parser.add_argument(
        "--config", type=Path, default=None, help="WorldConfig YAML/JSON (objects, colours, ...)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the dataset described by the parsed ``world`` arguments; returns 0."""
    def world_dataset(path: Path) -> bool:  # an unmarked raw dataset counts as ours only if it is a world
        from fourm.cli.data_user import _dataset_source

        return is_raw_dataset(path) and _dataset_source(path).startswith("world")

    with claim_output(args.out, "fourm-data world", [("--config", args.config)], args.overwrite, world_dataset):
        return _write(args)


def _write(args: argparse.Namespace) -> int:
    from fourm.data.raw_dataset import read_dataset_info, write_world_dataset
    from fourm.data.world import WorldConfig

    if args.config is not None and args.config.is_file() and not args.config.read_bytes().strip():
        raise FourmError(f"--config {args.config} is empty (give a WorldConfig YAML/JSON, or leave --config out)")
    config = WorldConfig.from_file(args.config) if args.config is not None else None
    size = args.size if args.size is not None else (config.size if config is not None else 64)
    out = write_world_dataset(
        args.out,
        args.num,
        size=size,
        seed=args.seed,
        val_fraction=args.val_fraction,
        num_workers=args.workers,
        config=config,
    )
    counts = read_dataset_info(out)["counts"]
    print(
        f"wrote {', '.join(f'{n} {split}' for split, n in counts.items())} samples ({size}x{size}) to {out}"
    )
    return 0


if __name__ == "__main__":  # ``python -m fourm.cli.data_world ...`` = ``fourm-data world ...``
    import sys

    from fourm.cli.data import main

    raise SystemExit(main(["world", *sys.argv[1:]]))
