"""Raw datasets on disk: exact write/load round trip, atomicity, clear errors, world datasets, CLI."""

import argparse
import json

import datasets
import numpy as np
import pytest

from fourm.cli import friendly_errors
from fourm.cli.data_world import register
from fourm.core.schema import ALL_KEYS
from fourm.data.raw_dataset import (
    INFO_FILE,
    VAL_INDEX_OFFSET,
    RawSamples,
    load_raw_dataset,
    read_dataset_info,
    write_raw_dataset,
    write_world_dataset,
)
from fourm.data.world import render_sample
from fourm.errors import FourmError


@pytest.fixture(scope="module")
def samples():
    return [render_sample(i, seed=5) for i in range(7)]


def _assert_same_sample(got, want, keys=ALL_KEYS):
    assert set(got) == set(keys)
    for k in keys:
        if k == "depth":  # stored as float16: exactly the float16 rounding of the original
            assert got[k].dtype == np.float32
            np.testing.assert_array_equal(got[k], want[k].astype(np.float16).astype(np.float32))
        elif isinstance(want[k], np.ndarray):
            assert got[k].dtype == want[k].dtype
            np.testing.assert_array_equal(got[k], want[k])
        else:
            assert got[k] == want[k], k


def _leftovers(parent, name):
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_write_load_round_trip_is_exact(tmp_path, samples):
    out = write_raw_dataset(
        tmp_path / "ds",
        {"train": iter(samples[:5]), "val": samples[5:]},
        size=64,
        keys=ALL_KEYS,
        totals={"train": 5, "val": 2},
        chunk_size=2,
        source="test",
    )
    dd = load_raw_dataset(out)
    assert set(dd) == {"train", "val"} and len(dd["train"]) == 5 and len(dd["val"]) == 2
    train, val = RawSamples(dd["train"]), RawSamples(dd["val"])
    assert train.size == 64 and train.keys == ALL_KEYS and len(train) == 5
    for i, want in enumerate(samples[:5]):
        _assert_same_sample(train[i], want)
    _assert_same_sample(val[-1], samples[6])
    assert [s["id"] for s in val] == [samples[5]["id"], samples[6]["id"]]
    with pytest.raises(IndexError):
        train[5]
    info = json.loads((out / INFO_FILE).read_text())
    assert info["size"] == 64 and info["keys"] == list(ALL_KEYS) and info["source"] == "test"
    assert info["counts"] == {"train": 5, "val": 2} == read_dataset_info(out)["counts"]
    assert isinstance(datasets.load_from_disk(str(out)), datasets.DatasetDict)  # plain datasets can read it
    assert _leftovers(tmp_path, "ds") == [] and not (out / ".staging").exists()


def test_subset_of_keys(tmp_path, samples):
    keys = ("id", "rgb", "caption")
    out = write_raw_dataset(tmp_path / "ds", {"train": samples[:3]}, size=64, keys=keys)
    view = RawSamples(load_raw_dataset(out)["train"])
    assert view.keys == keys
    _assert_same_sample(view[1], samples[1], keys)


def test_failure_mid_write_leaves_no_partial_directory_and_keeps_old_one(tmp_path, samples):
    def failing():
        yield from samples[:3]
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_raw_dataset(tmp_path / "ds", {"train": failing()}, size=64, keys=ALL_KEYS, chunk_size=2)
    assert not (tmp_path / "ds").exists() and _leftovers(tmp_path, "ds") == []

    write_raw_dataset(tmp_path / "ds", {"train": samples[:2]}, size=64, keys=ALL_KEYS)
    with pytest.raises(RuntimeError, match="crashed"):
        write_raw_dataset(tmp_path / "ds", {"train": failing()}, size=64, keys=ALL_KEYS, chunk_size=2)
    kept = RawSamples(load_raw_dataset(tmp_path / "ds")["train"])
    assert len(kept) == 2
    _assert_same_sample(kept[1], samples[1])
    assert _leftovers(tmp_path, "ds") == []


def test_empty_split_round_trips(tmp_path, samples):
    out = write_raw_dataset(tmp_path / "ds", {"train": samples[:1], "val": []}, size=64, keys=("id", "rgb"))
    dd = load_raw_dataset(out)
    assert len(dd["val"]) == 0 and list(RawSamples(dd["val"])) == []
    assert RawSamples(dd["train"])[0]["id"] == samples[0]["id"]
    assert read_dataset_info(out)["counts"] == {"train": 1, "val": 0}


def test_bad_samples_and_arguments_raise_fourm_error(tmp_path, samples):
    no_depth = [{k: v for k, v in samples[0].items() if k != "depth"}]
    with pytest.raises(FourmError, match="lacks key 'depth'"):
        write_raw_dataset(tmp_path / "a", {"train": no_depth}, size=64, keys=ALL_KEYS)
    with pytest.raises(FourmError, match="wrong image size"):
        write_raw_dataset(tmp_path / "b", {"train": samples[:1]}, size=32, keys=ALL_KEYS)
    with pytest.raises(FourmError, match="unknown raw-sample key 'lidar'"):
        write_raw_dataset(tmp_path / "c", {"train": samples[:1]}, size=64, keys=("rgb", "lidar"))
    with pytest.raises(FourmError, match="invalid split name"):
        write_raw_dataset(tmp_path / "d", {"tr/ain": samples[:1]}, size=64, keys=ALL_KEYS)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_load_errors_are_clear(tmp_path, samples):
    with pytest.raises(FourmError, match="not found"):
        load_raw_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FourmError, match="not a raw dataset"):
        load_raw_dataset(tmp_path / "empty")
    with pytest.raises(FourmError, match="not a fourm raw dataset"):
        read_dataset_info(tmp_path / "empty")
    out = write_raw_dataset(tmp_path / "ds", {"train": samples[:2]}, size=64, keys=ALL_KEYS)
    (out / "dataset_dict.json").write_text("{not json")
    with pytest.raises(FourmError, match="corrupt raw dataset"):
        load_raw_dataset(out)
    out = write_raw_dataset(tmp_path / "ds2", {"train": samples[:2]}, size=64, keys=ALL_KEYS)
    arrow = next((out / "train").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:100])
    with pytest.raises(FourmError, match="corrupt raw dataset"):
        load_raw_dataset(out)


def test_world_dataset_split_by_index_and_deterministic_across_workers(tmp_path):
    a = write_world_dataset(tmp_path / "a", 10, size=32, seed=2, val_fraction=0.2, num_workers=2)
    b = write_world_dataset(tmp_path / "b", 10, size=32, seed=2, val_fraction=0.2, num_workers=0)
    assert read_dataset_info(a)["counts"] == {"train": 8, "val": 2}
    da, db = load_raw_dataset(a), load_raw_dataset(b)
    train = RawSamples(da["train"])
    assert train.size == 32
    from fourm.data.world import WorldConfig

    _assert_same_sample(train[3], render_sample(3, seed=2, config=WorldConfig(size=32)))
    _assert_same_sample(
        RawSamples(da["val"])[1], render_sample(VAL_INDEX_OFFSET + 1, seed=2, config=WorldConfig(size=32))
    )
    for split in ("train", "val"):
        for x, y in zip(RawSamples(da[split]), RawSamples(db[split])):
            _assert_same_sample(x, y)
    with pytest.raises(FourmError, match="number of samples"):
        write_world_dataset(tmp_path / "c", 0)
    with pytest.raises(FourmError, match="val_fraction"):
        write_world_dataset(tmp_path / "c", 10, val_fraction=1.5)


def _cli(argv):
    parser = argparse.ArgumentParser(prog="fourm-data")
    register(parser.add_subparsers(dest="command", required=True))

    @friendly_errors
    def main(argv):
        args = parser.parse_args(argv)
        return args.func(args)

    return main(argv)


def test_cli_world(tmp_path, capsys):
    out = tmp_path / "w"
    assert (
        _cli(
            [
                "world",
                "--out",
                str(out),
                "--num",
                "5",
                "--size",
                "32",
                "--seed",
                "1",
                "--val-fraction",
                "0.4",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert read_dataset_info(out)["counts"] == {"train": 3, "val": 2}
    assert RawSamples(load_raw_dataset(out)["val"])[0]["id"] == f"world-1-{VAL_INDEX_OFFSET:08d}"
    assert "wrote 3 train, 2 val samples" in capsys.readouterr().out
    assert _cli(["world", "--out", str(tmp_path / "x"), "--num", "4", "--size", "7"]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "x").exists()
    cfg = tmp_path / "world.yaml"
    cfg.write_text("max_objects: 1\nshapes: [star]\n")
    assert _cli(["world", "--out", str(out), "--num", "3", "--workers", "0", "--config", str(cfg)]) == 0
    view = RawSamples(load_raw_dataset(out)["train"])
    assert view.size == 64 and all(s["bboxes"][0]["label"].endswith(" star") and len(s["bboxes"]) == 1 for s in view)
