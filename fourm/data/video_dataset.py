"""Raw video datasets: world clips written as a ``datasets.DatasetDict`` (train/val), read back as arrays.

    write_world_video_dataset("data/world_video", 1500, frames=8)
    clips = load_video_clips("data/world_video", "train")       # (N, T, 64, 64, 3) uint8

Columns: ``id``, ``caption``, ``video`` (T, H, W, 3) uint8, ``video_depth`` (T, H, W) float32 and
``video_semseg`` (T, H, W) uint8, frame-aligned. Same on-disk layout and ``fourm_dataset.json`` as
:mod:`fourm.data.raw_dataset` (plus ``frames``); the source reads ``world-video(seed=..., frames=...)``.
Val clip j is world index ``VAL_INDEX_OFFSET + j`` as in the image world.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fourm.data.raw_dataset import (
    FORMAT_VERSION,
    INFO_FILE,
    VAL_INDEX_OFFSET,
    load_raw_dataset,
    read_dataset_info,
)
from fourm.data.world import WorldConfig
from fourm.data.world.video import MAX_FRAMES, render_clip
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir

VIDEO_KEYS = ("id", "caption", "video", "video_depth", "video_semseg")


def video_features(frames: int, size: int):
    """``datasets.Features`` of a clip row."""
    import datasets as hfd

    return hfd.Features(
        {
            "id": hfd.Value("string"),
            "caption": hfd.Value("string"),
            "video": hfd.Array4D((frames, size, size, 3), "uint8"),
            "video_depth": hfd.Array3D((frames, size, size), "float32"),
            "video_semseg": hfd.Array3D((frames, size, size), "uint8"),
        }
    )


def _render_chunk(job: tuple[list[int], int, int, WorldConfig]) -> list[dict]:
    indices, seed, frames, config = job
    rows = []
    for i in indices:
        clip = render_clip(i, seed, frames, config)
        rows.append({"id": clip["id"], "caption": clip["caption"], "video": clip["video"],
                     "video_depth": clip["depth"], "video_semseg": clip["semseg"]})  # fmt: skip
    return rows


def _clips(
    indices: range, seed: int, frames: int, config: WorldConfig, pool, chunk: int = 16
) -> Iterator[dict]:
    jobs = [(list(indices[i : i + chunk]), seed, frames, config) for i in range(0, len(indices), chunk)]
    results = pool.imap(_render_chunk, jobs) if pool is not None else map(_render_chunk, jobs)
    return (row for part in results for row in part)


def write_world_video_dataset(
    out_dir: str | Path,
    num_clips: int,
    frames: int = 8,
    size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.1,
    num_workers: int = 2,
    config: WorldConfig | None = None,
    chunk_size: int = 128,
) -> Path:
    """Render ``num_clips`` world clips of ``frames`` frames and write them (atomically) to ``out_dir``."""
    import datasets as hfd
    from datasets.arrow_writer import ArrowWriter

    if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 1:
        raise FourmError(f"invalid number of clips {num_clips!r} (expected an integer >= 1)")
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise FourmError(f"invalid number of frames {frames!r} (expected an integer in 1..{MAX_FRAMES})")
    if not 0.0 <= val_fraction < 1.0:
        raise FourmError(f"invalid val_fraction {val_fraction} (expected 0 <= val_fraction < 1)")
    if seed < 0 or num_workers < 0:
        raise FourmError(f"invalid seed {seed} / workers {num_workers} (expected integers >= 0)")
    config = (config or WorldConfig()).replace(size=size)
    num_val = int(round(num_clips * val_fraction))
    num_train = num_clips - num_val
    if num_train < 1:
        raise FourmError(f"val_fraction={val_fraction} leaves no training clips out of {num_clips}")
    splits = {"train": range(num_train), "val": range(VAL_INDEX_OFFSET, VAL_INDEX_OFFSET + num_val)}
    feats = video_features(frames, size)
    out_dir = Path(out_dir)
    pool = None
    if num_workers > 1:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(num_workers)
    counts: dict[str, int] = {}
    try:
        with (
            atomic_dir(out_dir) as tmp,
            tqdm(total=num_clips, unit="clip", desc=f"writing {out_dir.name}") as bar,
        ):
            staging = tmp / ".staging"
            staging.mkdir()
            for name, indices in splits.items():
                writer = ArrowWriter(
                    features=feats, path=str(staging / f"{name}.arrow"), writer_batch_size=chunk_size
                )
                try:
                    batch: list[dict] = []
                    for row in _clips(indices, seed, frames, config, pool):
                        batch.append(row)
                        bar.update(1)
                        if len(batch) == chunk_size:
                            writer.write_batch({k: [r[k] for r in batch] for k in VIDEO_KEYS})
                            batch.clear()
                    if batch:
                        writer.write_batch({k: [r[k] for r in batch] for k in VIDEO_KEYS})
                    writer.finalize()
                finally:
                    writer.close()
                counts[name] = len(indices)
            parts = {name: hfd.Dataset.from_file(str(staging / f"{name}.arrow")) for name in splits}
            shards = {name: (1 if len(part) == 0 else None) for name, part in parts.items()}
            bars_were_on = not hfd.are_progress_bars_disabled()
            hfd.disable_progress_bars()  # our own bar covered the work; saving is a fast copy
            try:
                hfd.DatasetDict(parts).save_to_disk(str(tmp), num_shards=shards)
            finally:
                if bars_were_on:
                    hfd.enable_progress_bars()
            del parts
            for f in staging.iterdir():
                f.unlink()
            staging.rmdir()
            info = {"format": "fourm-raw", "version": FORMAT_VERSION, "size": size, "frames": frames,
                    "keys": list(VIDEO_KEYS), "counts": counts, "source": f"world-video(seed={seed}, frames={frames})"}  # fmt: skip
            (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    finally:
        if pool is not None:
            pool.terminate()
    return out_dir


def load_video_clips(
    path: str | Path, split: str, key: str = "video", limit: int | None = None
) -> np.ndarray:
    """Column ``key`` of ``split`` as one array, e.g. video -> (N, T, H, W, 3) uint8 (first ``limit`` clips)."""
    info = read_dataset_info(path)
    if key not in info.get("keys", []) or "frames" not in info:
        raise FourmError(
            f"{path} is not a video dataset with column '{key}' (build one with `fourm-data world-video`)"
        )
    dataset = load_raw_dataset(path)
    if split not in dataset:
        raise FourmError(f"dataset {path} has no '{split}' split (splits: {', '.join(dataset)})")
    part = dataset[split]
    n = len(part) if limit is None else min(limit, len(part))
    if n == 0:
        raise FourmError(f"split '{split}' of {path} is empty")
    dtype = np.dtype(part.features[key].dtype)
    view = part.with_format("numpy")  # integers come back as int64: cast chunk by chunk
    return np.concatenate([np.asarray(view[i : i + 128][key]).astype(dtype) for i in range(0, n, 128)])
