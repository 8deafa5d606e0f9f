"""``fourm-data embed``: add a sentence-embedding vector modality to a raw dataset.

    fourm-data embed --data data/world --source caption --name caption_embedding [--out DIR]
"""

from __future__ import annotations

import argparse
import re

from fourm.cli import device_name
from fourm.errors import FourmError
from fourm.utils.outputs import claim_output, is_raw_dataset, output_lock, partial_run

_COLUMN = re.compile(r"[a-z][a-z0-9_]*")


def column_name(text: str) -> str:
    """argparse ``type=`` of ``--name``: a new vector column (lower-case letters, digits, '_'), checked
    before the embedder is loaded; an empty name is refused, not replaced by the default."""
    from fourm.core.schema import ALL_KEYS

    if not _COLUMN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a column name of lower-case letters, digits and '_' starting with a letter, got {text!r}"
        )
    if text in ALL_KEYS:
        raise argparse.ArgumentTypeError(f"'{text}' is a built-in modality; choose another name")
    return text


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``embed`` sub-command (sets ``func``)."""
    p = subparsers.add_parser(
        "embed",
        help="add sentence embeddings of a text modality as a vector modality",
        description="Embed a text column (e.g. caption) of every sample with the bundled offline "
        "all-MiniLM-L6-v2 (384-d, l2-normalised, float32) and write the dataset with the new column.",
    )
    p.add_argument("--data", required=True, help="raw dataset directory")
    p.add_argument("--source", default="caption", help="text column to embed (default: caption)")
    p.add_argument("--name", type=column_name, default=None,
                   help="new column name: lower-case letters, digits and '_' (default: <source>_embedding)")
    p.add_argument("--out", default=None,
                   help="output dataset directory; without it the column is added to --data in place (atomically). "
                   "A given --out must not be or overlap --data, and is refused if it is a folder or file this "
                   "command did not write, unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", type=device_name, default="cpu")
    p.set_defaults(func=run_embed)
    return p


def run_embed(args: argparse.Namespace) -> int:
    if args.out is None:  # in place (documented): the dataset is only locked against other writers
        with output_lock(args.data, "fourm-data embed", flag="--data"):
            return _embed(args)
    with claim_output(args.out, "fourm-data embed", [("--data", args.data)], args.overwrite, is_raw_dataset):
        return _embed(args)


def _embed(args: argparse.Namespace) -> int:
    from fourm.data.derive.sentence_embeddings import MINILM, add_sentence_embeddings, load_minilm
    from fourm.data.pretokenize import dataset_fingerprint
    from fourm.data.raw_dataset import read_dataset_info

    if args.batch_size < 1:
        raise FourmError(f"--batch-size must be >= 1, got {args.batch_size}")
    name = f"{args.source}_embedding" if args.name is None else args.name
    info = read_dataset_info(args.data)  # fail on a bad --data before loading the embedder
    if name in info.get("keys", []):
        raise FourmError(f"{args.data} already has a column '{name}' (choose another --name)")
    manifest = {"inputs": {"data": dataset_fingerprint(args.data)}, "source": args.source, "name": name,
                "encoder": MINILM, "batch_size": args.batch_size}  # fmt: skip
    target = args.data if args.out is None else args.out
    with partial_run(target, manifest, start_over=args.overwrite) as partial:  # what an interrupted run resumes from
        out = add_sentence_embeddings(args.data, args.source, name, load_minilm(args.device), out=args.out,
                                      batch_size=args.batch_size, partial=partial)  # fmt: skip
    dim = read_dataset_info(out)["vectors"][name]["dim"]
    print(f"wrote {out}: '{name}' ({dim}-d unit vectors of '{args.source}') added")
    return 0


if __name__ == "__main__":  # ``python -m fourm.cli.data_embed ...`` = ``fourm-data embed ...``
    import sys

    from fourm.cli.data import main

    raise SystemExit(main(["embed", *sys.argv[1:]]))
