"""Training reads token datasets memory-mapped (Arrow files), never loading them whole: the arrays
behind every split are mapped from the dataset's own files, and reading every training sample of two
datasets grows the process's anonymous memory by a small fraction of their size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fourm.data.masking.spans import SequenceSpecialTokens
from fourm.data.token_dataset import (
    ModalityTokens,
    TokenDatasetInfo,
    TokenSamples,
    load_token_dataset,
    write_token_dataset,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/self (Linux)")

TOKENS = 2048  # rgb tokens per sample: 8 KiB a row
INFO = TokenDatasetInfo(
    modalities={
        "rgb": ModalityTokens(kind="image", vocab_size=1024, length=TOKENS),
        "caption": ModalityTokens(kind="sequence", vocab_size=64, length=12),
    },
    specials=SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 11))),
)


def write(path: Path, num_train: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)

    def samples(n):
        for i in range(n):
            yield {"id": str(i), "rgb": rng.integers(0, 1024, TOKENS, dtype=np.int32),
                   "caption": np.array([11 + i % 40, 12, 13, 2], dtype=np.int32)}  # fmt: skip

    return write_token_dataset(path, {"train": samples(num_train), "val": samples(8)}, INFO)


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("memmap")
    return write(base / "a", 1500, 0), write(base / "b", 1000, 1)  # 2 x ~10 MiB of rgb tokens


def mapped_files() -> list[tuple[int, int, str]]:
    """(start, end, path) of the file-backed mappings of this process."""
    out = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, parts[5]))
    return out


def assert_mapped_from(table, folder: Path) -> int:
    """Every data buffer of ``table`` (a pyarrow Table) lies in a mapping of an .arrow file under
    ``folder``; -> the bytes checked."""
    maps = [(s, e) for s, e, p in mapped_files() if p.endswith(".arrow") and Path(p).is_relative_to(folder.resolve())]
    assert maps, f"no .arrow file of {folder} is mapped"
    checked = 0
    for column in table.columns:
        for chunk in column.chunks:
            for buf in _buffers(chunk):
                if buf is None or buf.size == 0:
                    continue
                assert any(s <= buf.address and buf.address + buf.size <= e for s, e in maps), (
                    f"a {buf.size}-byte buffer of column {column.type} is not in a mapped file of {folder}"
                )
                checked += buf.size
    return checked


def _buffers(array):
    yield from array.buffers()  # list arrays: validity, offsets, then the child's buffers


def test_loaded_splits_are_memory_mapped_arrow_files(two_datasets):
    from datasets.table import MemoryMappedTable

    for path in two_datasets:
        dsd, _ = load_token_dataset(path)
        for split, ds in dsd.items():
            assert isinstance(ds.data, MemoryMappedTable), split
            assert all(Path(f["filename"]).resolve().is_relative_to(path.resolve()) for f in ds.cache_files)
            checked = assert_mapped_from(ds.data.table, path)
            assert checked >= len(ds) * TOKENS * 4  # the rgb tokens themselves are among them
            samples = TokenSamples(ds, ["rgb", "caption"])
            assert isinstance(samples.ds.data, MemoryMappedTable)  # column selection keeps the mapping
            assert samples[len(samples) - 1]["rgb"].shape == (TOKENS,)


def test_training_datasets_stay_memory_mapped(two_datasets, tmp_path):
    from datasets.table import MemoryMappedTable

    from fourm.training.data import build_training_data

    data = build_training_data(train_config(two_datasets, tmp_path))
    found = list(token_samples(data.train))
    assert len(found) == 2
    for samples, path in zip(found, two_datasets, strict=True):
        assert isinstance(samples.ds.data, MemoryMappedTable)
        assert assert_mapped_from(samples.ds.data.table, path) >= len(samples) * TOKENS * 4


def token_samples(dataset):
    """The TokenSamples inside the wrappers of a training dataset (masked, mixed, concatenated)."""
    if isinstance(dataset, TokenSamples):
        yield dataset
        return
    for name in ("samples", "dataset", "datasets"):
        inner = getattr(dataset, name, None)
        if inner is None:
            continue
        for item in inner if isinstance(inner, (list, tuple)) else [inner]:
            yield from token_samples(item)


def train_config(paths, out: Path):
    from fourm.training.config import TrainConfig

    return TrainConfig.from_dict({
        "data": {"datasets": [{"path": str(p), "weight": 1.0} for p in paths]},
        "model": {"preset": "tiny", "overrides": {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2}},
        "masking": {"input_budget": 16, "target_budget": 16},
        "optim": {"warmup_steps": 1}, "batch_size": 4, "steps": 2, "precision": "fp32", "eval_every": 0, "checkpoint_every": 0,
        "tensorboard": False, "output_dir": str(out),
    })  # fmt: skip


PROBE = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    def status(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    sys.path.insert(0, sys.argv[1])
    from test_token_memmap import train_config
    from fourm.training.data import build_training_data

    cfg = train_config([Path(p) for p in sys.argv[3:]], Path(sys.argv[2]))
    data = build_training_data(cfg)  # opens both sources (imports warm up here too)
    data.train.set_epoch(0)
    data.train[0]
    anon, file = status("RssAnon"), status("RssFile")
    seen = 0
    for i in range(len(data.train)):  # every training sample, masked, as the loader would
        data.train[i]
        seen += 1
    print(json.dumps({"anon": status("RssAnon") - anon, "file": status("RssFile") - file, "samples": seen}))
""")


def test_reading_every_sample_does_not_load_the_datasets(two_datasets, tmp_path):
    data_bytes = sum(f.stat().st_size for p in two_datasets for f in p.rglob("*.arrow"))
    assert data_bytes > 16 * 2**20
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", PROBE, str(Path(__file__).parent), str(tmp_path / "run"),
                          *map(str, two_datasets)], capture_output=True, text=True, env=env, timeout=1200)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    grown = json.loads(run.stdout.strip().splitlines()[-1])
    assert grown["samples"] == 2500
    # the tokens are read through the file mapping (file-backed pages), not copied into the heap
    assert grown["anon"] < data_bytes / 4, (grown, data_bytes)
    assert grown["file"] > data_bytes / 2, (grown, data_bytes)
