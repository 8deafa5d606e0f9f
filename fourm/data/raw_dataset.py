"""Raw multimodal datasets on disk: write streams of raw samples, load them back, view them as samples.

A raw dataset is a directory holding a Hugging Face ``datasets.DatasetDict`` (``save_to_disk``
layout, one split per sub-directory, rows in the :mod:`fourm.core.schema` record format) plus
``fourm_dataset.json`` (image size, keys, per-split counts, source). It is written atomically: a
crash leaves no partial directory and keeps any previous one.

    write_world_dataset("data/world", 2000)                 # procedural world, train/val
    samples = RawSamples(load_raw_dataset("data/world")["train"])
    samples[0]["rgb"]                                       # (64, 64, 3) uint8
"""

from __future__ import annotations

import json
import multiprocessing as mp
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fourm.core.schema import (
    ALL_KEYS,
    IMAGE_LAYOUT,
    check_image,
    features,
    from_record,
    to_record,
    vector_feature,
)
from fourm.data.world import WorldConfig, render_sample
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.config import read_json_object

INFO_FILE = "fourm_dataset.json"
FORMAT_VERSION = 1
VAL_INDEX_OFFSET = (
    1_000_000_000  # world index of val sample j: growing --num never moves a scene between splits
)
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _check_sample(sample: dict, keys: tuple[str, ...], size: int, where: str) -> None:
    missing = [k for k in keys if k not in sample]
    if missing:
        raise FourmError(
            f"{where}: sample {sample.get('id', '?')!r} lacks key '{missing[0]}' (dataset keys: {', '.join(keys)})"
        )
    for k in keys:
        if k in IMAGE_LAYOUT:
            check_image(k, np.asarray(sample[k]), size)


def _write_split(
    path: Path,
    samples: Iterable[dict],
    feats,
    keys: tuple[str, ...],
    size: int,
    split: str,
    chunk_size: int,
    bar: tqdm,
) -> int:
    """Stream ``samples`` into one Arrow file, ``chunk_size`` rows per batch; returns the row count."""
    from datasets.arrow_writer import ArrowWriter

    count = 0
    columns: dict[str, list] = {k: [] for k in keys}

    def flush() -> None:
        if columns[keys[0]]:
            # stacking image columns lets datasets convert each column in one go (10x faster)
            writer.write_batch({k: np.stack(v) if k in IMAGE_LAYOUT else v for k, v in columns.items()})
            for v in columns.values():
                v.clear()

    writer = ArrowWriter(features=feats, path=str(path), writer_batch_size=chunk_size)
    try:
        for sample in samples:
            _check_sample(sample, keys, size, f"split '{split}'")
            record = to_record({k: sample[k] for k in keys})
            for k in keys:
                columns[k].append(record[k])
            count += 1
            bar.update(1)
            if len(columns[keys[0]]) >= chunk_size:
                flush()
        flush()
        writer.finalize()
    finally:
        writer.close()
    return count


def write_raw_dataset(
    out_dir: str | Path,
    splits: dict[str, Iterable[dict]],
    size: int,
    keys: tuple[str, ...],
    totals: dict[str, int] | None = None,
    chunk_size: int = 512,
    source: str = "custom",
    require_samples: bool = False,
) -> Path:
    """Stream raw samples of each split into a ``DatasetDict`` saved at ``out_dir`` (atomically).

    ``keys`` are the columns kept (every sample must have them); images must be ``size`` x ``size``.
    ``totals`` (expected samples per split) only sizes the progress bar. ``require_samples``: FourmError
    (before anything replaces ``out_dir``) when no split got a sample. Returns ``out_dir``.
    """
    import datasets as hfd

    out_dir = Path(out_dir)
    keys = tuple(keys)
    if not keys:
        raise FourmError(f"no keys to write (choose from {', '.join(ALL_KEYS)})")
    if not splits:
        raise FourmError("no splits to write (expected e.g. {'train': samples, 'val': samples})")
    for name in splits:
        if not _SPLIT_NAME.match(str(name)):
            raise FourmError(f"invalid split name {name!r} (expected letters, digits and '_')")
    if chunk_size < 1:
        raise FourmError(f"invalid chunk_size {chunk_size} (expected >= 1)")
    feats = features(size, keys)  # validates the keys
    total = sum(totals.values()) if totals else None
    counts: dict[str, int] = {}
    with atomic_dir(out_dir) as tmp:
        staging = tmp / ".staging"
        staging.mkdir()
        with tqdm(total=total, unit="sample", desc=f"writing {out_dir.name}", dynamic_ncols=True) as bar:
            for name, samples in splits.items():
                counts[name] = _write_split(
                    staging / f"{name}.arrow", samples, feats, keys, size, name, chunk_size, bar
                )
        if require_samples and not any(counts.values()):
            raise FourmError(f"no samples to write to {out_dir} (every split is empty); {out_dir} left unchanged")
        parts = {name: hfd.Dataset.from_file(str(staging / f"{name}.arrow")) for name in splits}
        bars_were_on = not hfd.are_progress_bars_disabled()
        hfd.disable_progress_bars()  # our own bar covered the work; saving is a fast copy
        try:
            # an empty split saved with the default sharding gets no data file and cannot be loaded back
            shards = {name: (1 if len(part) == 0 else None) for name, part in parts.items()}
            hfd.DatasetDict(parts).save_to_disk(str(tmp), num_shards=shards)
        finally:
            if bars_were_on:
                hfd.enable_progress_bars()
        del parts
        shutil.rmtree(staging)
        info = {
            "format": "fourm-raw",
            "version": FORMAT_VERSION,
            "size": size,
            "keys": list(keys),
            "counts": counts,
            "source": source,
        }
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out_dir


def read_dataset_info(path: str | Path) -> dict:
    """The ``fourm_dataset.json`` of a raw dataset: size, keys, counts, source."""
    path = Path(path)
    info_path = path / INFO_FILE
    if not info_path.is_file():
        raise FourmError(
            f"{path} is not a fourm raw dataset (no {INFO_FILE}; build one with `fourm-data world`)"
        )

    try:
        return read_json_object(info_path, "dataset info")
    except FourmError as e:
        raise FourmError(f"corrupt {info_path}: {e}") from None


def load_raw_dataset(path: str | Path):
    """Load a raw dataset written by :func:`write_raw_dataset` -> ``datasets.DatasetDict``."""
    import datasets as hfd

    path = Path(path)
    if not path.exists():
        raise FourmError(f"raw dataset not found: {path}")
    if not (path / "dataset_dict.json").is_file():
        raise FourmError(
            f"{path} is not a raw dataset (no dataset_dict.json; build one with `fourm-data world`)"
        )
    try:
        dataset = hfd.load_from_disk(str(path))
    except Exception as e:  # datasets/pyarrow raise many types for damaged files
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise FourmError(f"corrupt raw dataset {path}: {first}") from None
    if not isinstance(dataset, hfd.DatasetDict):
        raise FourmError(f"{path} holds a single split, expected a DatasetDict of splits")
    return dataset


_KEY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def add_vector_column(
    path: str | Path,
    name: str,
    vectors: dict[str, tuple[np.ndarray, np.ndarray]],
    out: str | Path | None = None,
    meta: dict | None = None,
) -> Path:
    """Write a copy of the raw dataset at ``path`` with one more column ``name`` (atomically, to
    ``out``; default: in place) and declare it in ``fourm_dataset.json`` (``keys`` and
    ``vectors: {name: {"dim": D, **meta}}``).

    ``vectors``: split -> (values (N, D) float32, present (N,) bool); absent rows are stored as null.
    """
    import datasets as hfd
    import pyarrow as pa

    path = Path(path)
    out = Path(out) if out is not None else path
    info = read_dataset_info(path)
    if not _KEY_NAME.match(name) or name in ALL_KEYS:
        raise FourmError(f"invalid vector key '{name}' (lower-case letters, digits and '_', not one of {', '.join(ALL_KEYS)})")
    if name in info.get("keys", []):
        raise FourmError(f"{path} already has a column '{name}' (choose another --name)")
    dataset = load_raw_dataset(path)
    if set(vectors) != set(dataset):
        raise FourmError(f"vectors given for splits {sorted(vectors)}, the dataset has {sorted(dataset)}")
    dims = {v.shape[1] for v, _ in vectors.values() if v.ndim == 2}
    if len(dims) != 1 or any(v.ndim != 2 for v, _ in vectors.values()):
        raise FourmError(f"vectors of '{name}' must be (N, D) arrays with one D for every split")
    dim = dims.pop()
    parts = {}
    for split, ds in dataset.items():
        values, present = vectors[split]
        if len(values) != len(ds) or len(present) != len(ds):
            raise FourmError(f"split '{split}': {len(values)} vectors for {len(ds)} samples")
        flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
        column = pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~np.asarray(present, dtype=bool)))
        parts[split] = ds.add_column(name, column, feature=vector_feature(dim))
    with atomic_dir(out) as tmp:
        hfd.DatasetDict(parts).save_to_disk(str(tmp))
        new_info = {**info, "keys": [*info.get("keys", []), name]}
        new_info["vectors"] = {**info.get("vectors", {}), name: {"dim": dim, **(meta or {})}}
        (tmp / INFO_FILE).write_text(json.dumps(new_info, indent=2) + "\n")
    return out


class RawSamples(Sequence):
    """A read-only sequence view of one split: ``samples[i]`` is a raw sample dict (numpy images)."""

    def __init__(self, dataset) -> None:
        self.keys: tuple[str, ...] = tuple(dataset.column_names)
        image_keys = [k for k in self.keys if k in IMAGE_LAYOUT]
        # (H, W) or (H, W, C) shape of the first image column; None for image-free datasets
        self.size: int | None = dataset.features[image_keys[0]].shape[0] if image_keys else None
        self.dataset = dataset.with_format("numpy", columns=image_keys, output_all_columns=True)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"RawSamples indices must be integers, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample index {index} out of range for {n} samples")
        return from_record(self.dataset[int(index) % n])

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self[i]


# ----------------------------------------------------------------------------- procedural world


def load_split(path: str | Path, split: str):
    """The ``split`` of the raw dataset at ``path`` (FourmError naming the splits it has, or when it is empty)."""
    dataset = load_raw_dataset(path)
    if split not in dataset:
        raise FourmError(f"dataset {path} has no '{split}' split (splits: {', '.join(dataset)})")
    if len(dataset[split]) == 0:
        counts = ", ".join(f"{s} {len(d)}" for s, d in dataset.items())
        raise FourmError(f"split '{split}' of {path} is empty (0 samples; splits: {counts})")
    return dataset[split]


def modality_split(path: str | Path, split: str, key: str):
    """The ``split`` as something that yields ``key`` per sample: the dataset itself when it has the
    column, else a :class:`RawSamples` view (which derives e.g. edges from rgb)."""
    ds = load_split(path, split)
    return ds if key in ds.column_names else RawSamples(ds)


def _render_chunk(job: tuple[list[int], int, object]) -> list[dict]:
    indices, seed, config = job
    return [render_sample(i, seed, config) for i in indices]


def _world_samples(indices: range, seed: int, config, pool, chunk: int = 32) -> Iterator[dict]:
    """Samples of ``indices`` in order; with a pool, rendering starts now (before iteration)."""
    jobs = [(list(indices[i : i + chunk]), seed, config) for i in range(0, len(indices), chunk)]
    results = pool.imap(_render_chunk, jobs) if pool is not None else map(_render_chunk, jobs)
    return (sample for part in results for sample in part)


def write_world_dataset(
    out_dir: str | Path,
    num_samples: int,
    size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.1,
    num_workers: int = 2,
    config=None,
) -> Path:
    """Render ``num_samples`` world samples with a process pool and write them as a raw dataset.

    The last ``round(num_samples * val_fraction)`` samples form ``val``; val sample j is world index
    ``VAL_INDEX_OFFSET + j`` and train sample i is index i. ``config`` (a WorldConfig) overrides all
    world settings except ``size``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise FourmError(f"invalid number of samples {num_samples!r} (expected an integer >= 1)")
    if not 0.0 <= val_fraction < 1.0:
        raise FourmError(f"invalid val_fraction {val_fraction} (expected 0 <= val_fraction < 1)")
    if num_workers < 0:
        raise FourmError(f"invalid number of workers {num_workers} (expected >= 0)")
    if seed < 0:
        raise FourmError(f"invalid seed {seed} (expected an integer >= 0)")
    config = (config or WorldConfig()).replace(size=size)
    num_val = int(round(num_samples * val_fraction))
    num_train = num_samples - num_val
    if num_train < 1:
        raise FourmError(f"val_fraction={val_fraction} leaves no training samples out of {num_samples}")
    train_idx = range(num_train)
    val_idx = range(VAL_INDEX_OFFSET, VAL_INDEX_OFFSET + num_val)
    pool = None
    if num_workers > 1:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(num_workers)
    try:
        splits = {
            "train": _world_samples(train_idx, seed, config, pool),
            "val": _world_samples(val_idx, seed, config, pool),
        }
        return write_raw_dataset(
            out_dir,
            splits,
            size=size,
            keys=ALL_KEYS,
            totals={"train": num_train, "val": num_val},
            source=f"world(seed={seed})",
        )
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
