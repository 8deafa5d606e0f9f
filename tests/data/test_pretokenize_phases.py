"""The phases of ``pretokenize``, each on its own with stand-in encoders (no tokenizer is loaded)."""

from __future__ import annotations

import json

import pytest

from fourm.data.pretokenize import (
    PretokenizeReport,
    build_manifest,
    claim_partial_run,
    encode_samples,
    encode_split,
    load_splits,
)
from fourm.data.raw_dataset import write_world_dataset
from fourm.data.world import WorldConfig
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, default_registry


def registry() -> ModalityRegistry:
    base = default_registry()
    # "title" reads the samples' caption (data_key), as a second text modality would
    return ModalityRegistry.from_dict(
        {
            "caption": base["caption"].to_dict(),
            "title": {**base["caption"].to_dict(), "name": "title", "data_key": "caption"},
        }
    )


def lengths(values):
    """A stand-in encoder: a value -> [its length]; None stays None."""
    return [None if v is None else [len(v)] for v in values]


def samples(n: int) -> list[dict]:
    return [{"id": f"s{i}", "caption": "x" * i} if i % 3 else {"caption": None} for i in range(n)]


def test_encode_samples_batches_ids_data_keys_and_missing_values():
    report, batches = PretokenizeReport(), []
    ids, columns = encode_samples(
        samples(7), 1, 7, {"caption": lengths, "title": lengths}, registry(), 4, report, batches.append
    )
    assert batches == [4, 2]
    assert ids == ["s1", "s2", "3", "s4", "s5", "6"]  # a sample without an id gets its index
    assert columns["caption"] == [[1], [2], None, [4], [5], None]
    assert columns["title"] == columns["caption"]  # read under data_key "caption"
    assert report.missing == {"caption": 2, "title": 2}


def test_encode_split_does_its_own_shards_and_resumes(tmp_path):
    enc, reg = {"caption": lengths}, registry()
    report = PretokenizeReport()
    paths = encode_split(samples(10), "train", tmp_path, enc, reg, 2, 3, report, rank=1, world=2)
    assert [p.name for p in paths] == [f"shard_{k:05d}.jsonl" for k in range(4)]
    assert [p.exists() for p in paths] == [False, True, False, True]  # shards 1 and 3 are rank 1's
    assert report.samples == {"train": 10} and report.shards_done == 2
    rows = [json.loads(line) for line in paths[3].read_text().splitlines()]
    assert rows == [{"id": "9", "caption": None}]

    again = PretokenizeReport()
    encode_split(samples(10), "train", tmp_path, enc, reg, 2, 3, again)  # one process: the rest
    assert (again.shards_done, again.shards_resumed) == (2, 2)
    assert all(p.exists() for p in paths)


def test_manifest_guards_a_resume_and_the_other_processes(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "data.txt").write_text("a")
    reg, partial = registry(), tmp_path / "out.partial"
    partial.mkdir()
    manifest = build_manifest(raw, {"caption": lengths}, reg, 8, settings={"precision": "fp32"})
    assert manifest["modalities"] == ["caption"] and manifest["precision"] == "fp32"
    assert set(manifest["inputs"]) == {f"raw dataset {raw}", "modality 'caption'"}

    claim_partial_run(partial, manifest)
    assert json.loads((partial / "manifest.json").read_text()) == manifest
    claim_partial_run(partial, manifest)  # the same run resumes
    claim_partial_run(partial, manifest, rank=1, wait_seconds=0)  # another process follows it

    other = build_manifest(raw, {"caption": lengths}, reg, 16, {"precision": "fp32"})
    with pytest.raises(FourmError, match=r"changed: shard_size \(8 -> 16\)"):
        claim_partial_run(partial, other)
    with pytest.raises(FourmError, match="process 1: .* other settings"):
        claim_partial_run(partial, other, rank=1, wait_seconds=0)
    (raw / "data.txt").write_text("changed")
    with pytest.raises(FourmError, match=f"changed: raw dataset {raw}"):
        claim_partial_run(partial, build_manifest(raw, {"caption": lengths}, reg, 8, {"precision": "fp32"}))


def test_load_splits_checks_every_split_first(tmp_path):
    raw = write_world_dataset(
        tmp_path / "raw", 4, size=32, seed=3, val_fraction=0.25, config=WorldConfig(size=32)
    )
    data, splits = load_splits(raw)
    assert splits == ["train", "val"] and len(data["train"]) == 3
    assert load_splits(raw, ["val"])[1] == ["val"]
    with pytest.raises(FourmError, match="has no split 'test' .splits: train, val"):
        load_splits(raw, ["val", "test"])
