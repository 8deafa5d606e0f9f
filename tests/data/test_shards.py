"""fourm-data import --source webdataset / parquet: tiny shards made here, the same raw dataset as the
imagefolder import of the same images, splits, one-line errors for bad shards, shard-by-shard reading."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fourm.cli.data import main
from fourm.data.raw_dataset import RawSamples, load_raw_dataset
from fourm.data.user import LoadReport
from fourm.data.user.shards import ParquetSource, WebDatasetSource

SIZE = 16


def picture(i: int) -> bytes:
    """A 24x20 PNG, different for every i (a colour and a bar position)."""
    rgb = np.zeros((20, 24, 3), np.uint8)
    rgb[:] = (20 * (i % 12), 255 - 15 * (i % 16), 90)
    rgb[:, (i * 3) % 20:(i * 3) % 20 + 4] = (250, 250, 250)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def caption(i: int) -> str:
    return f"picture number {i}"


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tar(path, indices, mode="w", json_every=2, extra=None):
    """One webdataset shard: <key>.png + <key>.txt (or <key>.json every ``json_every``-th sample)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for i in indices:
            key = f"{i:04d}"
            add(tar, f"{key}.png", picture(i))
            if i % json_every == 0:
                add(tar, f"{key}.json", json.dumps({"text": caption(i), "source": "test"}).encode())
            else:
                add(tar, f"{key}.txt", caption(i).encode())
        for name, data in (extra or {}).items():
            add(tar, name, data)
    return path


def write_parquet(path, indices, image="image", text="text", struct=False, split=None, rows_per_group=5):
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [picture(i) for i in indices]
    columns = {
        image: [{"bytes": b, "path": None} for b in images] if struct else images,
        text: [caption(i) for i in indices],
        "key": [f"k{i}" for i in indices],
    }
    if split is not None:
        columns["split"] = [split(i) for i in indices]
    pq.write_table(pa.table(columns), path, row_group_size=rows_per_group)
    return path


def imagefolder(root, indices):
    root.mkdir(parents=True)
    rows = []
    for i in indices:
        (root / f"{i:04d}.png").write_bytes(picture(i))
        rows.append(json.dumps({"file_name": f"{i:04d}.png", "text": caption(i)}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root


def run(argv, capsys):
    rc = main(["import", "--size", str(SIZE), *map(str, argv)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err.strip()


def by_caption(path):
    """{caption: (rgb, split)} of every sample of a raw dataset."""
    out = {}
    for split, ds in load_raw_dataset(path).items():
        samples = RawSamples(ds)
        for j in range(len(samples)):
            s = samples[j]
            out[s["caption"]] = (np.asarray(s["rgb"]), split)
    return out


def assert_same_as_imagefolder(tmp_path, out, indices, capsys):
    ref = tmp_path / "ref"
    assert run(["--source", "imagefolder", "--root", imagefolder(tmp_path / "folder", indices), "--out", ref],
               capsys)[0] == 0  # fmt: skip
    got, want = by_caption(out), by_caption(ref)
    assert set(got) == set(want) == {caption(i) for i in indices}
    for text, (rgb, _) in want.items():
        np.testing.assert_array_equal(got[text][0], rgb)
    info = json.loads((out / "fourm_dataset.json").read_text())
    assert info["keys"] == json.loads((ref / "fourm_dataset.json").read_text())["keys"] == ["id", "rgb", "caption"]


# ------------------------------------------------------------------------------------ webdataset
def test_webdataset_equals_imagefolder(tmp_path, capsys):
    shards = tmp_path / "shards"
    write_tar(shards / "000.tar", range(0, 6))
    write_tar(shards / "001.tar.gz", range(6, 12), mode="w:gz")
    out = tmp_path / "out"
    rc, printed, err = run(["--source", "webdataset", "--root", shards, "--out", out, "--val-fraction", "0.25"], capsys)
    assert rc == 0, err
    assert "loaded 12 samples" in printed and "train 9, val 3" in printed
    assert_same_as_imagefolder(tmp_path, out, range(12), capsys)
    ids = set(load_raw_dataset(out)["train"]["id"]) | set(load_raw_dataset(out)["val"]["id"])
    assert "000/0000" in ids and "001/0006" in ids  # <shard>/<key>


def test_webdataset_glob_and_split_by_shard_name(tmp_path, capsys):
    shards = tmp_path / "shards"
    write_tar(shards / "train-000.tar", range(0, 5))
    write_tar(shards / "train-001.tar", range(5, 10))
    write_tar(shards / "val-000.tar", range(10, 13))
    write_tar(shards / "test-000.tar", range(13, 15))
    write_tar(tmp_path / "elsewhere" / "train-9.tar", range(20, 22))
    out = tmp_path / "out"
    rc, printed, err = run(["--source", "webdataset", "--root", f"{shards}/*.tar", "--out", out], capsys)
    assert rc == 0, err
    assert "splits from shard names: 10 train, 3 val" in printed
    assert "test shard left out" in printed
    data = by_caption(out)
    assert {t for t, (_, s) in data.items() if s == "val"} == {caption(i) for i in range(10, 13)}
    assert len(data) == 13


def test_webdataset_bad_samples_are_skipped(tmp_path, capsys):
    shards = tmp_path / "shards"
    extra = {"0100.png": b"\x89PNG\r\n\x1a\n not a png", "0100.txt": b"broken", "0101.txt": b"no image",
             "0102.png": picture(3), "0102.json": b'{"other": 1}'}  # fmt: skip
    write_tar(shards / "a.tar", range(6), extra=extra)
    out = tmp_path / "out"
    rc, printed, err = run(["--source", "webdataset", "--root", shards, "--out", out], capsys)
    assert rc == 0, err
    assert "loaded 6 samples" in printed
    assert "1 x corrupt file" in printed and "1 x missing file" in printed and "1 x bad annotation" in printed
    assert len(by_caption(out)) == 6


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty folder", "missing"])
def test_webdataset_bad_shard_is_a_one_line_error(tmp_path, capsys, kind):
    shards = tmp_path / "shards"
    good = write_tar(shards / "000.tar", range(4))
    if kind == "garbage":
        (shards / "001.tar").write_bytes(b"this is not a tar archive at all" * 40)
    elif kind == "truncated":
        data = write_tar(tmp_path / "t" / "x.tar", range(4, 8)).read_bytes()
        (shards / "001.tar").write_bytes(data[: len(data) // 2 + 100])
    elif kind == "empty folder":
        good.unlink()
    root = tmp_path / "nowhere" if kind == "missing" else shards
    out = tmp_path / "out"
    rc, _, err = run(["--source", "webdataset", "--root", root, "--out", out], capsys)
    assert rc == 2 and err.startswith("error: ") and "\n" not in err
    expected = {"garbage": "bad shard", "truncated": "bad shard", "empty folder": "no webdataset shards",
                "missing": "not found"}[kind]  # fmt: skip
    assert expected in err
    if kind in ("garbage", "truncated"):
        assert "001.tar" in err
    assert not out.exists()


def test_webdataset_reads_one_shard_at_a_time(tmp_path, monkeypatch):
    shards = tmp_path / "shards"
    for k in range(3):
        write_tar(shards / f"{k:03d}.tar", range(4 * k, 4 * k + 4))
    source = WebDatasetSource(shards, SIZE, LoadReport())
    assert len(source) == 12 and source.keys == ("id", "rgb", "caption")
    opened = []
    real_open = tarfile.open

    def tracking_open(name=None, mode="r", *args, **kwargs):
        opened.append((str(name).rsplit("/", 1)[-1], mode))
        return real_open(name, mode, *args, **kwargs)

    monkeypatch.setattr(tarfile, "open", tracking_open)
    samples = source.iter()
    first = next(samples)
    assert first["caption"] == caption(0) and first["rgb"].shape == (SIZE, SIZE, 3)
    assert opened == [("000.tar", "r|*")]  # streamed, the other shards untouched
    rest = list(samples)
    assert len(rest) == 11 and [o[0] for o in opened] == ["000.tar", "001.tar", "002.tar"]
    opened.clear()
    assert [s["caption"] for s in source.iter(["002/0009"])] == [caption(9)]
    assert [o[0] for o in opened] == ["002.tar"]  # only the shard holding a wanted id is read


# ------------------------------------------------------------------------------------ parquet
def test_parquet_equals_imagefolder(tmp_path, capsys):
    shards = tmp_path / "pq"
    write_parquet(shards / "part-0.parquet", range(0, 7))
    write_parquet(shards / "part-1.parquet", range(7, 12), struct=True)  # datasets' Image feature
    out = tmp_path / "out"
    rc, printed, err = run(["--source", "parquet", "--root", shards, "--out", out, "--val-fraction", "0.25"], capsys)
    assert rc == 0, err
    assert "loaded 12 samples" in printed and "train 9, val 3" in printed
    assert_same_as_imagefolder(tmp_path, out, range(12), capsys)
    ids = set(load_raw_dataset(out)["train"]["id"]) | set(load_raw_dataset(out)["val"]["id"])
    assert "part-0/0" in ids and "part-1/4" in ids  # <shard>/<row>


def test_parquet_columns_ids_and_split_column(tmp_path, capsys):
    shards = tmp_path / "pq"
    write_parquet(shards / "a.parquet", range(10), image="img", text="caption",
                  split=lambda i: "validation" if i % 5 == 0 else "train")  # fmt: skip
    out = tmp_path / "out"
    rc, printed, err = run(["--source", "parquet", "--root", shards, "--out", out, "--image-column", "img",
                            "--text-column", "caption", "--id-column", "key", "--split-column", "split"], capsys)  # fmt: skip
    assert rc == 0, err
    assert "splits from column 'split': 8 train, 2 val" in printed
    assert sorted(load_raw_dataset(out)["val"]["id"]) == ["a/k0", "a/k5"]
    # the text column falls back to 'caption' when the shards have no 'text'
    rc, _, err = run(["--source", "parquet", "--root", shards, "--out", tmp_path / "o2", "--image-column", "img"], capsys)
    assert rc == 0, err
    assert len(by_caption(tmp_path / "o2")) == 10


def test_parquet_reads_record_batches_shard_by_shard(tmp_path, monkeypatch):
    from fourm.data.user import shards as mod

    root = tmp_path / "pq"
    for k in range(3):
        write_parquet(root / f"s{k}.parquet", range(10 * k, 10 * k + 10))
    monkeypatch.setattr(mod, "PARQUET_BATCH", 4)
    source = ParquetSource(root, SIZE, LoadReport())
    batches = []
    real = ParquetSource._batches

    def tracking(self, shard, columns):
        for batch in real(self, shard, columns):
            batches.append((shard.name, len(next(iter(batch.values())))))
            yield batch

    monkeypatch.setattr(ParquetSource, "_batches", tracking)
    samples = source.iter()
    assert next(samples)["caption"] == caption(0)
    assert batches == [("s0.parquet", 4)]  # one record batch of one shard decoded so far
    assert len(list(samples)) == 29
    assert max(n for _, n in batches) == 4 and [b[0] for b in batches].count("s2.parquet") == 3


@pytest.mark.parametrize("kind", ["garbage", "missing column", "flag of another source"])
def test_parquet_bad_shard_is_a_one_line_error(tmp_path, capsys, kind):
    shards = tmp_path / "pq"
    write_parquet(shards / "a.parquet", range(4))
    argv = ["--source", "parquet", "--root", shards, "--out", tmp_path / "out"]
    if kind == "garbage":
        (shards / "b.parquet").write_bytes(b"PAR1 not really parquet")
    elif kind == "missing column":
        argv += ["--image-column", "jpg"]
    else:
        argv[1] = "webdataset"
        argv += ["--text-column", "caption"]
    rc, _, err = run(argv, capsys)
    assert rc == 2 and err.startswith("error: ") and "\n" not in err
    expected = {"garbage": "bad shard", "missing column": "no column 'jpg'",
                "flag of another source": "--text-column only applies to --source parquet"}[kind]  # fmt: skip
    assert expected in err
    if kind == "garbage":
        assert "b.parquet" in err
    assert not (tmp_path / "out").exists()
