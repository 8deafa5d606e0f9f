"""``fourm-tokenizer finetune-decoder``: train a trained image tokenizer's decoder further (or a
new, larger one) on frozen codes, so the tokens, and every dataset and model made from them, stay
valid while the reconstructions improve.

    fourm-tokenizer finetune-decoder --tokenizer runs/tok/rgb_pruned --data data/world \\
        --out runs/tok/rgb_decoder [--steps 3000] [--max-minutes 30] [decoder_width=64 train.lr=0.001 ...]

The config is the tokenizer's own; overrides may change only the decoder side (``decoder_width``,
``decoder_res_blocks``, ``loss.*``, ``gan.*``, ``diffusion.*``, ``train.*``). The output has the
layout of ``fourm-tokenizer train`` (``tokenizer/`` best, ``last/``, ``metrics.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fourm.cli import positive_float
from fourm.data.raw_dataset import modality_split
from fourm.errors import FourmError
from fourm.utils.config import apply_overrides, flatten_mapping
from fourm.utils.outputs import claim_output, is_trained_tokenizer

DECODER_KEYS = ("decoder_width", "decoder_res_blocks", "loss", "gan", "diffusion", "train")


def decoder_config(source: dict, overrides: list[str]) -> dict:
    """The fine-tuning config: ``source`` (a tokenizer's config dict) with ``train.trainable:
    decoder`` and ``overrides``; FourmError when an override touches the encoder side."""
    data = apply_overrides(source, ["train.trainable=decoder", *overrides])
    before, after = flatten_mapping(source), flatten_mapping(data)
    for key in sorted(set(before) | set(after)):
        if key.split(".")[0] not in DECODER_KEYS and before.get(key) != after.get(key):
            raise FourmError(f"finetune-decoder keeps the encoder and codebook: '{key}' cannot change "
                             f"(only {', '.join(DECODER_KEYS)})")  # fmt: skip
    return data


def _run(args: argparse.Namespace) -> int:
    inputs = [("--data", args.data), ("--tokenizer", args.tokenizer)]
    with claim_output(args.out, "fourm-tokenizer finetune-decoder", inputs, args.overwrite, is_trained_tokenizer):
        from tokenizers_zoo.image import ImageTokenizer, ImageTokenizerConfig
        from tokenizers_zoo.image.trainer import train_image_tokenizer

        source = ImageTokenizer.from_pretrained(args.tokenizer)
        cfg = ImageTokenizerConfig.from_dict(decoder_config(source.cfg.to_dict(), args.overrides))
        train = modality_split(args.data, "train", cfg.modality)
        val = modality_split(args.data, "val", cfg.modality)
        result = train_image_tokenizer(
            cfg, train, val, args.out, steps=args.steps, max_minutes=args.max_minutes, init=source,
            start_over=args.overwrite,
        )
        summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in result["final"].items()}
        print(json.dumps(summary))
        print(f"tokenizer saved to {Path(args.out) / 'tokenizer'} (best; same tokens as {args.tokenizer})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "finetune-decoder", help="train a tokenizer's decoder on its frozen codes (tokens unchanged)"
    )
    parser.add_argument("--tokenizer", required=True, help="trained image tokenizer directory (save_pretrained)")
    parser.add_argument("--data", required=True, help="raw dataset directory (fourm-data world / import)")
    parser.add_argument("--out", required=True, help="output directory (refused if it is a folder or file this "
                        "command did not write, unless --overwrite)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    parser.add_argument("--max-minutes", type=positive_float, default=None, help="stop after this many minutes (> 0)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (overrides train.steps)")
    parser.add_argument("overrides", nargs="*", help="decoder-side overrides key=value, e.g. decoder_width=64")
    parser.set_defaults(func=_run)
    return parser


if __name__ == "__main__":  # ``python -m fourm.cli.tokenizer_decoder ...`` = ``fourm-tokenizer finetune-decoder ...``
    import sys

    from fourm.cli.tokenizer import main

    raise SystemExit(main(["finetune-decoder", *sys.argv[1:]]))
