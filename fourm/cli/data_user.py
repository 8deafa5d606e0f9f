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
anything is written.
    fourm-data show --data data/mine --split val --num 8 --out grid.png
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from fourm.cli import MAX_IMAGE_SIDE, bounded_int, fraction
from fourm.core.schema import ALL_KEYS
from fourm.errors import FourmError


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


SOURCES = ("imagefolder", "folders", "webdataset", "parquet")
PARQUET_FLAGS = ("image_column", "text_column", "id_column")


def split_ids(ids: list[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic train/val split: the ``round(n * val_fraction)`` ids with the smallest seeded hash
    go to val (at least one when the fraction is > 0 and n >= 2). Both lists keep the input order."""
    if not 0.0 <= val_fraction < 1.0:
        raise FourmError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    n = len(ids)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    ranked = sorted(ids, key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())
    val = set(ranked[:n_val])
    return [i for i in ids if i not in val], [i for i in ids if i in val]


def _with_derived(samples: Iterable[dict], derive: tuple[str, ...]) -> Iterator[dict]:
    from fourm.data.derive import add_derived

    for sample in samples:
        yield add_derived(sample, derive) if derive else sample


def _counted(samples: Iterable[dict], counts: dict[str, int], name: str) -> Iterator[dict]:
    for sample in samples:
        counts[name] += 1
        yield sample


def run_import(args: argparse.Namespace) -> int:
    from fourm.utils.outputs import claim_output, is_raw_dataset

    def imported(path: Path) -> bool:  # an unmarked raw dataset counts as ours only if it was imported
        return is_raw_dataset(path) and not _dataset_source(path).startswith("world")

    with claim_output(args.out, "fourm-data import", [("--root", args.root)], args.overwrite, imported):
        return _import(args)


def _dataset_source(path: Path) -> str:
    """The ``source`` recorded in a raw dataset's fourm_dataset.json ('' when unreadable)."""
    import json

    try:
        source = json.loads((path / "fourm_dataset.json").read_text(encoding="utf-8")).get("source", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return source if isinstance(source, str) else ""


def _import(args: argparse.Namespace) -> int:
    from fourm.data.derive import parse_derive
    from fourm.data.raw_dataset import write_raw_dataset
    from fourm.data.user import AlignedFolderSource, ImageFolderSource, LoadReport
    from fourm.data.user.shards import ParquetSource, WebDatasetSource

    if args.size <= 0:
        raise FourmError(f"--size must be > 0, got {args.size}")
    derive = parse_derive(args.derive)
    report = LoadReport()
    if args.modalities is not None and args.source != "folders":
        raise FourmError("--modalities only applies to --source folders")
    if args.split_column is not None and args.source not in ("imagefolder", "parquet"):
        raise FourmError("--split-column only applies to --source imagefolder and parquet")
    flags = [f for f in PARQUET_FLAGS if getattr(args, f, None) is not None]
    if flags and args.source != "parquet":
        raise FourmError(f"--{flags[0].replace('_', '-')} only applies to --source parquet")
    if args.source == "imagefolder":
        source = ImageFolderSource(args.root, args.size, report, split_column=args.split_column)
    elif args.source == "webdataset":
        source = WebDatasetSource(args.root, args.size, report)
    elif args.source == "parquet":
        source = ParquetSource(args.root, args.size, report, image_column=args.image_column,
                               text_column=args.text_column, id_column=args.id_column,
                               split_column=args.split_column)  # fmt: skip
    else:
        source = AlignedFolderSource(args.root, args.size, _csv(args.modalities), report)
    if derive and "rgb" not in source.keys:
        raise FourmError(f"--derive {','.join(derive)} needs rgb images, but {args.root} has none")
    if not source.ids:
        print(report.summary())
        problem = report.first_problem()  # e.g. the metadata.jsonl line that is not JSON
        raise FourmError(f"no samples found under {args.root}" + (f" ({report.num_skipped} skipped; first: {problem})" if problem else ""))
    keys = tuple(k for k in ALL_KEYS if k in source.keys or k in derive)
    given = getattr(source, "splits", None)
    if given is not None:
        how = f"column '{args.split_column}'" if args.split_column else ("folders" if args.source in (
            "imagefolder", "folders") else "shard names")
        train_ids = [i for i in source.ids if given[i] == "train"]
        val_ids = [i for i in source.ids if given[i] == "val"]
        print(f"splits from {how}: {len(train_ids)} train, {len(val_ids)} val candidates (--val-fraction not used)")
    else:
        train_ids, val_ids = split_ids(source.ids, args.val_fraction, args.seed)
    written = {"train": 0, "val": 0}
    splits = {"train": _counted(_with_derived(source.iter(train_ids), derive), written, "train")}
    totals = {"train": len(train_ids)}  # upper bounds: bad samples are skipped
    if val_ids:
        splits["val"] = _counted(_with_derived(source.iter(val_ids), derive), written, "val")
        totals["val"] = len(val_ids)
    print(f"importing {len(source.ids)} candidate samples from {args.root} (keys: {', '.join(keys[1:])})")
    try:  # a run that loads nothing fails before the rename: an existing --out stays as it was
        out = write_raw_dataset(
            args.out, splits, args.size, keys, totals=totals, source=f"{args.source}:{args.root}", require_samples=True
        )
    except FourmError:
        print(report.summary())
        if report.loaded == 0:
            raise FourmError(f"no sample of {args.root} could be loaded (see the report above); {args.out} left unchanged") from None
        raise
    print(report.summary())
    sizes = ", ".join(f"{name} {written[name]}" for name in splits)
    print(f"wrote {out} (splits: {sizes})")
    if not written["train"]:
        print("warning: the train split is empty")
    return 0


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
