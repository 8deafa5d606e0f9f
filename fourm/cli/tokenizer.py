"""``fourm-tokenizer``: train and evaluate tokenizers on a raw dataset.

    fourm-tokenizer train --config configs/tokenizers/rgb.yaml --data data/world --out outputs/tok_rgb \\
        [--max-minutes 30] [--steps 5000] [train.lr=0.001 width=64 ...]
    fourm-tokenizer eval --tokenizer outputs/tok_rgb/tokenizer --data data/world [--split val] [--num 512]
    fourm-tokenizer train-text --data data/world --out outputs/tokenizers/text [--vocab-size 1024]

``train`` writes ``tokenizer/`` (best checkpoint), ``last/``, ``metrics.json`` and
``reconstructions.png`` into the output directory; ``eval`` prints the same metrics as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fourm.cli import friendly_errors
from fourm.errors import FourmError


def _load_split(data: str, split: str, key: str):
    """The ``split`` of the raw dataset at ``data``, as something :func:`stack_modality` reads."""
    try:
        from fourm.data.raw_dataset import RawSamples, load_raw_dataset
    except ImportError as e:  # pragma: no cover - only while the data layer is missing
        raise FourmError(f"cannot load raw datasets: {e}") from None
    dataset = load_raw_dataset(data)
    if split not in dataset:
        raise FourmError(f"dataset {data} has no '{split}' split (splits: {', '.join(dataset)})")
    ds = dataset[split]
    return ds if key in ds.column_names else RawSamples(ds)  # RawSamples may derive missing modalities


def _train(args: argparse.Namespace) -> int:
    from fourm.utils.config import apply_overrides, read_mapping
    from tokenizers_zoo.image import ImageTokenizerConfig
    from tokenizers_zoo.image.trainer import train_image_tokenizer

    data = apply_overrides(read_mapping(args.config), args.overrides)
    try:
        cfg = ImageTokenizerConfig.from_dict(data)
    except FourmError as e:
        raise FourmError(f"{args.config}: {e}") from None
    out = Path(args.out or Path("outputs") / "tokenizers" / Path(args.config).stem)
    train = _load_split(args.data, "train", cfg.modality)
    val = _load_split(args.data, "val", cfg.modality)
    result = train_image_tokenizer(cfg, train, val, out, steps=args.steps, max_minutes=args.max_minutes)
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in result["final"].items()}
    print(json.dumps(summary))
    print(f"tokenizer saved to {out / 'tokenizer'} (best), metrics in {out / 'metrics.json'}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from tokenizers_zoo.image import ImageTokenizer
    from tokenizers_zoo.image.trainer import evaluate, stack_modality
    from tokenizers_zoo.image.visualize import reconstruction_grid

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = ImageTokenizer.from_pretrained(args.tokenizer, device=device)
    samples = _load_split(args.data, args.split, tokenizer.modality)
    arrays = stack_modality(samples, tokenizer.modality, limit=args.num)
    dtype = None if args.fp32 else torch.bfloat16
    metrics, recons = evaluate(tokenizer, arrays, args.batch_size, dtype, progress=True)
    if args.png:
        reconstruction_grid(tokenizer.modality, arrays[:8], recons[:8], args.png)
    print(json.dumps({k: round(v, 4) for k, v in metrics.items()}))
    return 0


def _train_text(args: argparse.Namespace) -> int:
    from tokenizers_zoo.text import TextTokenizer, corpus_from_samples

    samples = _load_split(args.data, "train", key="")  # "" is never a column: RawSamples view
    if args.vocab_size < 1:
        raise FourmError(f"--vocab-size must be >= 1, got {args.vocab_size}")
    texts = corpus_from_samples(samples[i] for i in range(len(samples)))
    tokenizer = TextTokenizer.train(texts, vocab_size=args.vocab_size, show_progress=True)
    tokenizer.save_pretrained(args.out)
    print(f"text tokenizer with {tokenizer.vocab_size} tokens saved to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fourm-tokenizer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train an image tokenizer from a config")
    tr.add_argument("--config", required=True, help="tokenizer YAML, e.g. configs/tokenizers/rgb.yaml")
    tr.add_argument("--data", required=True, help="raw dataset directory (fourm-data world / import)")
    tr.add_argument("--out", default=None, help="output directory (default outputs/tokenizers/<config name>)")
    tr.add_argument("--max-minutes", type=float, default=None, help="stop after this many minutes")
    tr.add_argument("--steps", type=int, default=None, help="training steps (overrides train.steps)")
    tr.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. train.lr=0.001")
    tr.set_defaults(func=_train)
    ev = sub.add_parser("eval", help="reconstruction metrics of a trained tokenizer")
    ev.add_argument("--tokenizer", required=True, help="directory written by save_pretrained")
    ev.add_argument("--data", required=True, help="raw dataset directory")
    ev.add_argument("--split", default="val")
    ev.add_argument("--num", type=int, default=None, help="evaluate at most this many images")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--png", default=None, help="also save an inputs-vs-reconstructions PNG here")
    ev.add_argument("--fp32", action="store_true", help="evaluate without bf16 autocast")
    ev.set_defaults(func=_eval)
    tt = sub.add_parser("train-text", help="train the WordPiece text vocabulary (captions, boxes, metadata, ...)")
    tt.add_argument("--data", required=True, help="raw dataset directory; its train split is the corpus")
    tt.add_argument("--out", required=True, help="output directory (tokenizer.json + config.json)")
    tt.add_argument("--vocab-size", type=int, default=1024, help="maximum vocabulary size, structured tokens included")
    tt.set_defaults(func=_train_text)
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
