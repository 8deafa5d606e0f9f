"""``fourm-tokenizer train-video``: train the joint image-video tokenizer on a world-video dataset.

    fourm-tokenizer train-video --config configs/tokenizers/video.yaml --data data/world_video \\
        --out outputs/tok_video [train.image_stage.max_minutes=4 train.joint_stage.steps=3000 ...]

Stage one trains on single frames (images), stage two on images and clips together; the output
directory gets ``tokenizer/``, ``image_stage/``, ``metrics.json``, ``reconstruction.gif`` and
``reconstructions.png`` (see ``tokenizers_zoo.video.trainer``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fourm.errors import FourmError
from fourm.utils.config import apply_overrides, read_mapping
from fourm.utils.outputs import claim_output


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train-video`` sub-command to an argparse sub-parser group (sets ``func``)."""
    parser = subparsers.add_parser("train-video", help="train the joint image-video tokenizer (two stages)")
    parser.add_argument(
        "--config", required=True, help="video tokenizer YAML, e.g. configs/tokenizers/video.yaml"
    )
    parser.add_argument("--data", required=True, help="raw video dataset (fourm-data world-video)")
    parser.add_argument("--out", required=True, help="output directory (refused if it is a folder this command did "
                        "not write, unless --overwrite)")  # fmt: skip
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty --out that this command did not write",
    )
    parser.add_argument(
        "overrides", nargs="*", help="config overrides key=value, e.g. train.joint_stage.max_minutes=8"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train as the parsed ``train-video`` arguments say; returns 0."""

    def recognize(path: Path) -> bool:
        return (path / "metrics.json").is_file() or (path / "tokenizer").is_dir()

    inputs = [("--data", args.data), ("--config", args.config)]
    with claim_output(args.out, "fourm-tokenizer train-video", inputs, args.overwrite, recognize):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from fourm.data.video_dataset import load_video_clips
    from tokenizers_zoo.video import VideoTokenizerConfig
    from tokenizers_zoo.video.trainer import train_video_tokenizer

    data = read_mapping(args.config)
    if not data:
        raise FourmError(
            f"--config {args.config} is empty (give a video tokenizer YAML, e.g. configs/tokenizers/video.yaml)"
        )
    try:
        cfg = VideoTokenizerConfig.from_dict(apply_overrides(data, args.overrides))
    except FourmError as e:
        raise FourmError(f"{args.config}: {e}") from None
    train = load_video_clips(args.data, "train")
    val = load_video_clips(args.data, "val", limit=cfg.train.eval_clips)
    if train.shape[2] != cfg.image_size or train.shape[1] > cfg.max_frames:
        raise FourmError(f"{args.data} holds {train.shape[1]}-frame {train.shape[2]}px clips; the config takes at most "
                         f"{cfg.max_frames} frames of {cfg.image_size}px")  # fmt: skip
    result = train_video_tokenizer(cfg, train, val, args.out, start_over=args.overwrite)
    final = result.get("joint_stage", result.get("image_stage", {})).get("eval", {})
    print(json.dumps({k: v for k, v in final.items() if not isinstance(v, list)}))
    print(f"tokenizer saved to {Path(args.out) / 'tokenizer'}, metrics in {Path(args.out) / 'metrics.json'}")
    return 0


if __name__ == "__main__":  # ``python -m fourm.cli.tokenizer_video ...`` = ``fourm-tokenizer train-video ...``
    import sys

    from fourm.cli.tokenizer import main

    raise SystemExit(main(["train-video", *sys.argv[1:]]))
