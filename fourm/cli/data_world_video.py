"""``fourm-data world-video``: render world clips (objects moving at constant velocities) into a raw
video dataset (train/val; columns id, caption, video, video_depth, video_semseg).

fourm-data world-video --out data/world_video --num 1500 [--frames 8] [--size 64] [--seed 0] [--workers 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fourm.cli import MAX_IMAGE_SIDE, bounded_int, fraction
from fourm.errors import FourmError
from fourm.utils.outputs import claim_output, is_raw_dataset


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``world-video`` sub-command to an argparse sub-parser group (sets ``func``)."""
    from fourm.data.world.video import MAX_FRAMES

    parser = subparsers.add_parser(
        "world-video",
        help="render clips of the procedural world (moving objects) into a raw video dataset",
        description="Render clips whose objects move at constant velocities: per-frame rgb ('video'), depth and "
        "semseg, and a caption that says how each object moves.",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output dataset directory (replaced atomically)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty --out that this command did not write",
    )
    parser.add_argument(
        "--num", type=bounded_int(1, 10_000_000), required=True, help="total number of clips (train + val)"
    )
    parser.add_argument(
        "--frames", type=bounded_int(1, MAX_FRAMES), default=8, help="frames per clip (default 8)"
    )
    parser.add_argument(
        "--size",
        type=bounded_int(16, MAX_IMAGE_SIDE),
        default=None,
        help="frame side in pixels (default 64, or the --config's)",
    )
    parser.add_argument(
        "--seed", type=bounded_int(0), default=0, help="world seed: clip i is fully determined by (seed, i)"
    )
    parser.add_argument(
        "--val-fraction", type=fraction, default=0.1, help="fraction of clips in the val split"
    )
    parser.add_argument(
        "--workers", type=bounded_int(0, 256), default=2, help="rendering processes (0 or 1: in-process)"
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="WorldConfig YAML/JSON (objects, colours, ...)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the clip dataset described by the parsed ``world-video`` arguments; returns 0."""

    def video_dataset(path: Path) -> bool:
        from fourm.cli.data_user import _dataset_source

        return is_raw_dataset(path) and _dataset_source(path).startswith("world-video")

    with claim_output(
        args.out, "fourm-data world-video", [("--config", args.config)], args.overwrite, video_dataset
    ):
        return _write(args)


def _write(args: argparse.Namespace) -> int:
    from fourm.data.raw_dataset import read_dataset_info
    from fourm.data.video_dataset import write_world_video_dataset
    from fourm.data.world import WorldConfig

    if args.config is not None and args.config.is_file() and not args.config.read_bytes().strip():
        raise FourmError(
            f"--config {args.config} is empty (give a WorldConfig YAML/JSON, or leave --config out)"
        )
    config = WorldConfig.from_file(args.config) if args.config is not None else None
    size = args.size if args.size is not None else (config.size if config is not None else 64)
    out = write_world_video_dataset(args.out, args.num, frames=args.frames, size=size, seed=args.seed,
                                    val_fraction=args.val_fraction, num_workers=args.workers, config=config)  # fmt: skip
    counts = read_dataset_info(out)["counts"]
    print(f"wrote {', '.join(f'{n} {split}' for split, n in counts.items())} clips "
          f"({args.frames} frames, {size}x{size}) to {out}")  # fmt: skip
    return 0


if __name__ == "__main__":  # ``python -m fourm.cli.data_world_video ...`` = ``fourm-data world-video ...``
    import sys

    from fourm.cli.data import main

    raise SystemExit(main(["world-video", *sys.argv[1:]]))
