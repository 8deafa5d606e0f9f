"""``fourm-data import`` (your own images / annotations -> raw dataset) and ``fourm-data show`` (picture).

    fourm-data import --source imagefolder --root my_photos --out data/mine --derive edges,metadata
    fourm-data import --source folders --root my_aligned --out data/aligned --modalities rgb,depth
    fourm-data import --source imagefolder --root my_photos --out data/mine --split-column split
    fourm-data import --source webdataset --root 'shards/*.tar' --out data/mine   # 000.jpg + 000.txt / .json
    fourm-data import --source parquet --root hub_export/data --out data/mine --image-column image --text-column text

Splits: ``--split-column NAME`` (a metadata.jsonl or parquet column holding train / val per row), else
``ROOT/train/`` + ``ROOT/val/`` folders (imagefolder; shards: also ``train-*`` / ``val-*`` names), else
``--val-fraction`` of the samples, hashed. Shards (webdataset tars, parquet) are read one at a time
(:mod:`fourm.data.user.shards`); a shard that cannot be read is named in a one-line error before
anything is written. The import itself is :func:`fourm.data.importer.import_dataset`.
    fourm-data show --data data/mine --split val --num 8 --out grid.png
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from fourm.cli import MAX_IMAGE_SIDE, bounded_int, fraction
from fourm.data.importer import SOURCES, ImportSettings, import_dataset
from fourm.data.importer import split_ids as split_ids  # re-exported
from fourm.errors import FourmError
from fourm.utils.outputs import raw_dataset_source as _dataset_source  # noqa: F401 (fourm-data world, world-video)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` and ``show`` sub-commands to the ``fourm-data`` dispatcher."""
    p = subparsers.add_parser(
        "import",
        help="import your own data (imagefolder, aligned folders, webdataset or parquet shards) as a raw dataset",
        description="Import user data into a raw dataset (train/val), skipping and reporting bad files.",
    )
    p.add_argument("--source", required=True, choices=list(SOURCES),
                   help="imagefolder: images + metadata.jsonl; folders: ROOT/<modality>/<id>.<ext>; webdataset: tar "
                   "shards of <key>.jpg/png + <key>.txt or <key>.json ({\"text\": ...}); parquet: shards with an "
                   "encoded-image column and a caption column")
    p.add_argument("--root", required=True, type=Path,
                   help="folder to import; webdataset / parquet: a folder of shards (searched recursively) or a "
                   "quoted glob pattern such as 'shards/*.tar'")
    p.add_argument("--out", required=True, type=Path,
                   help="output raw-dataset directory (replaced only once the import is complete; refused if it "
                   "is a folder or file this command did not write, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    p.add_argument("--size", type=bounded_int(1, MAX_IMAGE_SIDE), default=64,
                   help=f"image side after resize + centre crop (default 64, at most {MAX_IMAGE_SIDE})")
    p.add_argument("--val-fraction", type=fraction, default=0.1,
                   help="fraction of samples in the val split, when the data has no splits of its own "
                   "(default: %(default)s)")
    p.add_argument("--split-column", default=None, metavar="NAME",
                   help="imagefolder / parquet: the metadata.jsonl or parquet column holding each row's split (train "
                   "or val); default: ROOT/train/ and ROOT/val/ folders when present (shards: also train-* / val-* "
                   "file names), else --val-fraction")
    p.add_argument("--image-column", default=None, metavar="NAME",
                   help="parquet: column of encoded image files (bytes, or {bytes, path} structs; default image)")
    p.add_argument("--text-column", default=None, metavar="NAME",
                   help="parquet: caption column (default text, else caption when the shards have no text column)")
    p.add_argument("--id-column", default=None, metavar="NAME",
                   help="parquet: sample id column (default: <shard>/<row number>)")
    p.add_argument("--derive", default=None,
                   help="modalities to compute from rgb where missing: comma list of edges,color_palette,metadata")
    p.add_argument("--modalities", default=None,
                   help="folders only: comma list of modality folders to use (default: all present)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val assignment (default 0)")
    p.set_defaults(func=run_import)

    s = subparsers.add_parser("show", help="save a picture of samples with every modality",
                              description="Save a grid picture: one row per sample, one column per modality.")
    s.add_argument("--data", required=True, type=Path, help="raw-dataset directory")
    s.add_argument("--split", default="val", help="split to show (default val)")
    s.add_argument("--num", type=int, default=8, help="number of samples (rows)")
    s.add_argument("--out", type=Path, default=Path("grid.png"),
                   help="output PNG (default grid.png; an existing file is replaced only if fourm-data show wrote it, "
                   "or with --overwrite)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out that this command did not write")
    s.add_argument("--modalities", default=None, help="comma list of columns (default: all present)")
    s.add_argument("--scale", type=bounded_int(1, 16), default=2, help="image up-scaling factor (default 2, at most 16)")
    s.set_defaults(func=run_show)


def run_import(args: argparse.Namespace) -> int:
    return import_dataset(ImportSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ImportSettings)}))


def run_show(args: argparse.Namespace) -> int:
    from fourm.utils.outputs import claim_output

    with claim_output(args.out, "fourm-data show", [("--data", args.data)], args.overwrite, mark=False):
        return _show(args)


def _show(args: argparse.Namespace) -> int:
    from fourm.data.raw_dataset import RawSamples, load_raw_dataset
    from fourm.data.visualize import save_sample_grid

    if args.num <= 0:
        raise FourmError(f"--num must be > 0, got {args.num}")
    splits = load_raw_dataset(args.data)
    if args.split not in splits:
        raise FourmError(f"split '{args.split}' not in {args.data} (splits: {', '.join(splits)})")
    raw = RawSamples(splits[args.split])
    n = min(args.num, len(raw))
    if n == 0:
        raise FourmError(f"split '{args.split}' of {args.data} is empty")
    samples = [raw[i] for i in range(n)]
    path = save_sample_grid(
        samples, args.out, modalities=_csv(args.modalities), scale=args.scale, written_by="fourm-data show"
    )
    print(f"wrote {path} ({n} samples of {args.data} [{args.split}])")
    return 0


if __name__ == "__main__":  # ``python -m fourm.cli.data_user ...`` = ``fourm-data import ...`` (``show`` with ``python -m fourm.cli.data show``)
    import sys

    from fourm.cli.data import main

    raise SystemExit(main(["import", *sys.argv[1:]]))
