"""``fourm-data import`` (your own images / annotations -> raw dataset) and ``fourm-data show`` (picture).

    fourm-data import --source imagefolder --root my_photos --out data/mine --derive edges,metadata
    fourm-data import --source folders --root my_aligned --out data/aligned --modalities rgb,depth
    fourm-data import --source imagefolder --root my_photos --out data/mine --split-column split

Splits: ``--split-column NAME`` (a metadata.jsonl column holding train / val per row), else
``ROOT/train/`` + ``ROOT/val/`` folders (imagefolder), else ``--val-fraction`` of the samples, hashed.
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
        help="import your own data (imagefolder or aligned per-modality folders) as a raw dataset",
        description="Import user data into a raw dataset (train/val), skipping and reporting bad files.",
    )
    p.add_argument("--source", required=True, choices=["imagefolder", "folders"],
                   help="imagefolder: images + metadata.jsonl; folders: ROOT/<modality>/<id>.<ext>")
    p.add_argument("--root", required=True, type=Path, help="folder to import")
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
                   help="imagefolder: the metadata.jsonl column holding each row's split (train or val); "
                   "default: ROOT/train/ and ROOT/val/ folders when present, else --val-fraction")
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

    with claim_output(args.out, "fourm-data import", [("--root", args.root)], args.overwrite, is_raw_dataset):
        return _import(args)


def _import(args: argparse.Namespace) -> int:
    from fourm.data.derive import parse_derive
    from fourm.data.raw_dataset import write_raw_dataset
    from fourm.data.user import AlignedFolderSource, ImageFolderSource, LoadReport

    if args.size <= 0:
        raise FourmError(f"--size must be > 0, got {args.size}")
    derive = parse_derive(args.derive)
    report = LoadReport()
    if args.source == "imagefolder":
        if args.modalities is not None:
            raise FourmError("--modalities only applies to --source folders")
        source = ImageFolderSource(args.root, args.size, report, split_column=args.split_column)
    else:
        if args.split_column is not None:
            raise FourmError("--split-column only applies to --source imagefolder")
        source = AlignedFolderSource(args.root, args.size, _csv(args.modalities), report)
    if derive and "rgb" not in source.keys:
        raise FourmError(f"--derive {','.join(derive)} needs rgb images, but {args.root} has none")
    if not source.ids:
        print(report.summary())
        raise FourmError(f"no samples found under {args.root}")
    keys = tuple(k for k in ALL_KEYS if k in source.keys or k in derive)
    given = getattr(source, "splits", None)
    if given is not None:
        how = f"column '{args.split_column}'" if args.split_column else "folders"
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
