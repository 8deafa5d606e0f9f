"""``fourm-data import``: your own images / annotations -> a raw dataset (train/val), skipping and
reporting bad files; the command (:mod:`fourm.cli.data_user`) and ``fourm-recipe``'s import stage both
run :func:`import_dataset`.

    import_dataset(ImportSettings(source="imagefolder", root=Path("my_photos"), out=Path("data/mine"),
                                  derive="edges,metadata"))

Splits: ``split_column`` (a metadata.jsonl or parquet column holding train / val per row), else
``ROOT/train/`` + ``ROOT/val/`` folders (imagefolder; shards: also ``train-*`` / ``val-*`` names), else
``val_fraction`` of the samples, hashed (:func:`split_ids`). The sources (:mod:`fourm.data.user`) and
the writer (:mod:`fourm.data.raw_dataset`) are loaded when an import runs, so the command's ``--help``
stays fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fourm.core.schema import ALL_KEYS
from fourm.errors import FourmError

SOURCES = ("imagefolder", "folders", "webdataset", "parquet")
PARQUET_FLAGS = ("image_column", "text_column", "id_column")


@dataclass
class ImportSettings:
    """What to import and how; the fields are ``fourm-data import``'s options (same names, same defaults)."""

    source: str  # one of SOURCES
    root: Path
    out: Path
    overwrite: bool = False
    size: int = 64
    val_fraction: float = 0.1
    split_column: str | None = None
    image_column: str | None = None  # parquet only (as text_column, id_column)
    text_column: str | None = None
    id_column: str | None = None
    derive: str | None = None  # comma list of modalities to compute from rgb
    modalities: str | None = None  # folders only: comma list of modality folders
    seed: int = 0


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


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


def import_dataset(args: ImportSettings) -> int:
    """Import ``args.root`` into the raw dataset ``args.out`` (``fourm-data import``): claims ``out``
    (refused if another command wrote it, unless ``overwrite``) and replaces it once the import is
    complete. -> 0 (the command's exit status); FourmError for bad settings or nothing loadable."""
    from fourm.utils.outputs import claim_output, is_raw_dataset, raw_dataset_source

    def imported(path: Path) -> bool:  # an unmarked raw dataset counts as ours only if it was imported
        return is_raw_dataset(path) and not raw_dataset_source(path).startswith("world")

    with claim_output(args.out, "fourm-data import", [("--root", args.root)], args.overwrite, imported):
        return _import(args)


def _import(args: ImportSettings) -> int:
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
