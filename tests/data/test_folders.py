"""User data: imagefolder + metadata.jsonl, aligned per-modality folders, resize/crop alignment, report."""

import json

import numpy as np
import pytest
from PIL import Image

from fourm.cli.data_user import split_ids
from fourm.data.user import (
    AlignedFolderSource,
    ImageFolderSource,
    LoadReport,
    center_square,
    iter_aligned_folders,
    iter_imagefolder,
    transform_boxes,
)
from fourm.errors import FourmError

RED = (255, 0, 0)


def _scene(w=96, h=64, box=(40, 10, 60, 30)):
    """rgb (h, w, 3) with a red rectangle at pixel box (x0, y0, x1, y1) and its semseg (class 3)."""
    x0, y0, x1, y1 = box
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = (0, 0, 160)
    rgb[y0:y1, x0:x1] = RED
    semseg = np.zeros((h, w), np.uint8)
    semseg[y0:y1, x0:x1] = 3
    return rgb, semseg


def _write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _red_mask(rgb):
    return (rgb[..., 0] > 128) & (rgb[..., 2] < 100)


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.fixture
def imagefolder(tmp_path):
    rows = []
    for i in range(5):
        rgb, _ = _scene(box=(40 + i, 10, 60 + i, 30))
        Image.fromarray(rgb).save(tmp_path / f"img{i}.png")
        box = [(40 + i) / 96, 10 / 64, (60 + i) / 96, 30 / 64]
        rows.append({"file_name": f"img{i}.png", "text": f"red box {i}", "bboxes": [{"label": "box", "box": box}],
                     "weather": "sunny", "score": i / 2, "tags": ["a", "b"]})  # fmt: skip
    (tmp_path / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")  # corrupt
    rows.append({"file_name": "gone.png", "text": "the file is missing"})  # missing
    rows.append("{not json")  # bad line
    rows.append({"file_name": "img0.png", "text": "listed twice"})  # duplicate
    _write_jsonl(tmp_path / "metadata.jsonl", rows)
    return tmp_path


def test_imagefolder_skips_corrupt_and_missing(imagefolder):
    report = LoadReport()
    samples = list(iter_imagefolder(imagefolder, 32, report=report))
    assert [s["id"] for s in samples] == ["img0", "img1", "img3", "img4"]
    assert report.loaded == 4
    assert report.skipped == {"corrupt file": 1, "missing file": 1, "bad metadata line": 1, "duplicate entry": 1}
    assert any("img2.png" in e for e in report.examples["corrupt file"])
    assert any("gone.png" in e for e in report.examples["missing file"])
    assert "metadata.jsonl:7" in report.examples["bad metadata line"][0]
    text = report.summary()
    assert "loaded 4 samples" in text and "skipped 4" in text and "corrupt file" in text

    s = samples[1]
    assert set(s) == {"id", "rgb", "caption", "bboxes", "metadata"}
    assert s["rgb"].shape == (32, 32, 3) and s["rgb"].dtype == np.uint8
    assert s["caption"] == "red box 1"
    assert s["metadata"] == {"weather": "sunny", "score": 0.5, "tags": '["a", "b"]'}  # other columns
    # the box is mapped through the centre crop (96x64 -> 64x64 square starting at x=16)
    np.testing.assert_allclose(s["bboxes"][0]["box"], [(41 - 16) / 64, 10 / 64, (61 - 16) / 64, 30 / 64], atol=1e-6)


def test_imagefolder_boxes_and_pixels_stay_aligned(imagefolder):
    for s in iter_imagefolder(imagefolder, 32):
        x0, y0, x1, y1 = (np.array(s["bboxes"][0]["box"]) * 32).round().astype(int)
        box_mask = np.zeros((32, 32), bool)
        box_mask[y0:y1, x0:x1] = True
        assert _iou(box_mask, _red_mask(s["rgb"])) > 0.85


def test_imagefolder_without_metadata(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.fromarray(_scene()[0]).save(tmp_path / "sub" / "a.jpg")
    Image.fromarray(_scene()[0]).convert("L").save(tmp_path / "b.png")  # grey -> 3 channels
    (tmp_path / "c.png").write_bytes(b"")  # empty file
    src = ImageFolderSource(tmp_path, 16)
    assert src.keys == ("id", "rgb") and src.ids == ["b", "c", "sub/a"]
    samples = list(src)
    assert [s["id"] for s in samples] == ["b", "sub/a"]
    assert samples[0]["rgb"].shape == (16, 16, 3)
    assert np.array_equal(samples[0]["rgb"][..., 0], samples[0]["rgb"][..., 2])  # grey stays grey
    assert src.report.skipped == {"corrupt file": 1}


def test_imagefolder_bad_annotations(tmp_path):
    for i in range(4):
        Image.fromarray(_scene()[0]).save(tmp_path / f"{i}.png")
    _write_jsonl(tmp_path / "metadata.jsonl", [
        {"file_name": "0.png", "text": "ok", "bboxes": []},
        {"file_name": "1.png", "bboxes": []},  # no caption while others have one
        {"file_name": "2.png", "text": "pixels", "bboxes": [{"label": "x", "box": [10, 10, 50, 50]}]},
        {"file_name": "3.png", "text": "ok too", "metadata": {"iso": 100, "flash": True}, "note": None},
    ])  # fmt: skip
    report = LoadReport()
    samples = list(iter_imagefolder(tmp_path, 16, report))
    assert [s["id"] for s in samples] == ["0", "3"] and samples[1]["bboxes"] == []  # no bboxes -> []
    assert report.skipped == {"bad annotation": 2}
    assert any("not normalised" in e for e in report.examples["bad annotation"])
    assert samples[0]["metadata"] == {} and samples[1]["metadata"] == {"iso": 100, "flash": 1}


def test_resize_keeps_modalities_aligned(tmp_path):
    """A non-square rgb + semseg pair (semseg at half resolution) stays aligned after resize/crop."""
    rgb, semseg = _scene(w=120, h=80, box=(50, 20, 80, 50))
    for m in ("rgb", "semseg", "depth", "edges"):
        (tmp_path / m).mkdir()
    Image.fromarray(rgb).save(tmp_path / "rgb" / "s0.png")
    Image.fromarray(semseg[::2, ::2]).save(tmp_path / "semseg" / "s0.png")  # 60x40, nearest-downsampled
    depth = np.where(semseg > 0, 0.25, 0.75).astype(np.float32)
    np.save(tmp_path / "depth" / "s0.npy", depth)
    Image.fromarray((semseg > 0).astype(np.uint8) * 255).save(tmp_path / "edges" / "s0.png")
    (s,) = list(iter_aligned_folders(tmp_path, 40))
    assert s["semseg"].shape == (40, 40) and s["depth"].shape == (40, 40) and s["edges"].shape == (40, 40)
    assert set(np.unique(s["semseg"])) == {0, 3}  # nearest: no invented classes
    assert set(np.unique(s["edges"])) == {0, 1}
    red = _red_mask(s["rgb"])
    assert _iou(red, s["semseg"] == 3) > 0.85
    assert _iou(red, s["depth"] < 0.5) > 0.85 and _iou(red, s["edges"] == 1) > 0.85
    # expected location: crop x from 20 to 100, scale 0.5 -> square at x 15..30, y 10..25
    expect = np.zeros((40, 40), bool)
    expect[10:25, 15:30] = True
    assert _iou(red, expect) > 0.85 and _iou(s["semseg"] == 3, expect) > 0.85
    assert s["depth"].dtype == np.float32 and 0.0 <= s["depth"].min() and s["depth"].max() <= 1.0


def test_aligned_folders_missing_and_corrupt(tmp_path):
    for m in ("rgb", "depth", "caption", "bboxes"):
        (tmp_path / m).mkdir()
    for i in range(4):
        Image.fromarray(_scene()[0]).save(tmp_path / "rgb" / f"{i:03d}.jpg")
        (tmp_path / "caption" / f"{i:03d}.txt").write_text(f"caption {i}\n")
        (tmp_path / "bboxes" / f"{i:03d}.json").write_text(json.dumps([{"label": "r", "box": [0, 0, 0.1, 1]}]))
    d16 = np.tile(np.linspace(0, 65535, 96), (64, 1)).astype(np.uint16)  # ramp along x
    Image.fromarray(d16).save(tmp_path / "depth" / "000.png")  # 16-bit
    Image.fromarray((d16 >> 8).astype(np.uint8)).save(tmp_path / "depth" / "001.png")  # 8-bit
    (tmp_path / "depth" / "003.png").write_bytes(b"broken")  # corrupt; 002 is missing
    (tmp_path / "caption" / "001.txt").unlink()
    (tmp_path / "caption" / "001.txt").write_text("")  # empty caption -> bad annotation
    report = LoadReport()
    src = AlignedFolderSource(tmp_path, 32, report=report)
    assert src.modalities == ("rgb", "depth", "caption", "bboxes") and src.ids == ["000", "001", "002", "003"]
    samples = list(src)
    assert [s["id"] for s in samples] == ["000"]
    assert report.skipped == {"bad annotation": 1, "missing file": 1, "corrupt file": 1}
    assert "depth/002" in report.examples["missing file"][0]
    s = samples[0]
    assert s["caption"] == "caption 0" and s["depth"].dtype == np.float32
    # 16-bit depth is divided by 65535: the ramp's centre crop (x 16..80 of 96) spans 0.17..0.83
    assert 0.15 < s["depth"].min() < 0.2 and 0.8 < s["depth"].max() < 0.85
    assert s["depth"].mean() == pytest.approx(0.5, abs=0.01)
    assert s["bboxes"] == []  # the box lay left of the centre crop: dropped (and noted)
    assert report.notes["box outside the centre crop dropped"] == 1
    # only some modalities: now 001 (8-bit depth) and 002 (no depth requested) load
    ok = list(iter_aligned_folders(tmp_path, 32, modalities=["rgb", "bboxes"]))
    assert len(ok) == 4 and set(ok[0]) == {"id", "rgb", "bboxes"}
    (s8,) = [s for s in iter_aligned_folders(tmp_path, 32, modalities=["rgb", "depth"]) if s["id"] == "001"]
    np.testing.assert_allclose(s8["depth"], s["depth"], atol=1 / 255 + 1e-3)  # 8-bit depth: / 255


def test_aligned_folders_errors(tmp_path):
    with pytest.raises(FourmError, match="data folder not found"):
        AlignedFolderSource(tmp_path / "nope", 32)
    with pytest.raises(FourmError, match="no modality folders"):
        AlignedFolderSource(tmp_path, 32)
    (tmp_path / "caption").mkdir()
    with pytest.raises(FourmError, match="at least one image modality"):
        AlignedFolderSource(tmp_path, 32)
    with pytest.raises(FourmError, match="modality folder 'rgb' not found"):
        AlignedFolderSource(tmp_path, 32, modalities=["rgb"])
    with pytest.raises(FourmError, match="unknown modality 'rgbb'"):
        AlignedFolderSource(tmp_path, 32, modalities=["rgbb"])


def test_aligned_size_mismatch(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "semseg").mkdir()
    Image.fromarray(_scene(w=96, h=64)[0]).save(tmp_path / "rgb" / "a.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "semseg" / "a.png")  # other aspect
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "semseg" / "b.png")  # orphan: ignored
    report = LoadReport()
    assert list(iter_aligned_folders(tmp_path, 16, report=report)) == []
    assert report.skipped == {"size mismatch": 1} and "rgb 96x64" in report.examples["size mismatch"][0]


def test_geometry_helpers():
    assert center_square(96, 64) == (16.0, 0.0, 80.0, 64.0)
    assert center_square(50, 80) == (0.0, 15.0, 50.0, 65.0)
    boxes, dropped = transform_boxes(
        [{"label": "a", "box": [0.0, 0.0, 0.5, 0.5]}, {"label": "b", "box": [0.9, 0.2, 1.0, 0.3]}], 100, 50
    )
    # 100x50 -> crop x 25..75: box a x 0..50 -> 0..25 of 50 -> [0, 0.5]; box b fully outside
    assert dropped == 1 and boxes == [{"label": "a", "box": [0.0, 0.0, 0.5, 0.5]}]


def test_split_ids():
    ids = [f"{i:04d}" for i in range(100)]
    train, val = split_ids(ids, 0.1, seed=0)
    assert len(val) == 10 and len(train) == 90 and set(train) | set(val) == set(ids)
    assert train == sorted(train) and split_ids(ids, 0.1, seed=0) == (train, val)
    assert split_ids(ids, 0.1, seed=1)[1] != val
    # adding ids keeps most earlier assignments (hash ranking, not a shuffle)
    _, val_more = split_ids(ids + [f"x{i}" for i in range(10)], 0.1, seed=0)
    assert len(set(val) & set(val_more)) >= 8
    assert split_ids(["a", "b"], 0.1) in ((["a"], ["b"]), (["b"], ["a"]))
    assert split_ids(["a", "b"], 0.0) == (["a", "b"], [])
    with pytest.raises(FourmError, match="val-fraction"):
        split_ids(ids, 1.0)


class _FakeRawDataset:
    """Stands in for fourm.data.raw_dataset (written by another module) to test the CLI alone."""

    def __init__(self):
        self.calls = []

    def write_raw_dataset(self, out_dir, splits, size, keys, totals=None, **kwargs):
        self.calls.append((out_dir, {k: list(v) for k, v in splits.items()}, size, keys, totals))
        return out_dir


def _outside(root):
    """An --out next to the imported folder (one inside it is refused: it lies inside the input)."""
    return root.with_name(root.name + "-out")


def _run_cli(argv):
    import argparse

    from fourm.cli import friendly_errors
    from fourm.cli.data_user import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))

    @friendly_errors
    def main(args=None):
        ns = parser.parse_args(args)
        return ns.func(ns)

    return main(argv)


def test_cli_import(imagefolder, tmp_path, monkeypatch, capsys):
    import sys
    import types

    fake = _FakeRawDataset()
    module = types.ModuleType("fourm.data.raw_dataset")
    module.write_raw_dataset = fake.write_raw_dataset
    monkeypatch.setitem(sys.modules, "fourm.data.raw_dataset", module)
    rc = _run_cli(["import", "--source", "imagefolder", "--root", str(imagefolder), "--out", str(_outside(tmp_path)),
                   "--size", "16", "--val-fraction", "0.25", "--derive", "edges,metadata"])  # fmt: skip
    assert rc == 0
    ((out, splits, size, keys, totals),) = fake.calls
    assert size == 16 and keys == ("id", "rgb", "edges", "caption", "bboxes", "metadata")
    assert totals == {"train": 4, "val": 2}  # 6 candidate ids: upper bounds (img2 corrupt, gone missing)
    loaded = splits["train"] + splits["val"]
    assert sorted(s["id"] for s in loaded) == ["img0", "img1", "img3", "img4"]
    for s in loaded:
        assert s["edges"].shape == (16, 16) and s["metadata"]["weather"] == "sunny" and "entropy" in s["metadata"]
    printed = capsys.readouterr().out
    assert "loaded 4 samples" in printed and "corrupt file" in printed and "img2.png" in printed

    rc = _run_cli(["import", "--source", "folders", "--root", str(imagefolder), "--out", str(_outside(tmp_path))])
    assert rc == 2 and "error: no modality folders" in capsys.readouterr().err
    rc = _run_cli(["import", "--source", "imagefolder", "--root", str(imagefolder), "--out", "x", "--derive", "depth"])
    assert rc == 2 and "cannot derive modality 'depth'" in capsys.readouterr().err


def test_cli_import_real_writer(imagefolder, tmp_path):
    raw = pytest.importorskip("fourm.data.raw_dataset")
    rc = _run_cli(["import", "--source", "imagefolder", "--root", str(imagefolder), "--out", str(_outside(tmp_path)),
                   "--size", "16", "--val-fraction", "0.25", "--derive", "color_palette"])  # fmt: skip
    assert rc == 0
    splits = raw.load_raw_dataset(_outside(tmp_path))
    samples = [raw.RawSamples(splits[name])[i] for name in splits for i in range(len(splits[name]))]
    assert sorted(s["id"] for s in samples) == ["img0", "img1", "img3", "img4"]
    assert all(s["rgb"].shape == (16, 16, 3) and len(s["color_palette"]) >= 2 for s in samples)


def _fake_writer(monkeypatch):
    import sys
    import types

    fake = _FakeRawDataset()
    module = types.ModuleType("fourm.data.raw_dataset")
    module.write_raw_dataset = fake.write_raw_dataset
    monkeypatch.setitem(sys.modules, "fourm.data.raw_dataset", module)
    return fake


def _split_rows(tmp_path, splits):
    rows = []
    for i, split in enumerate(splits):
        rgb, _ = _scene()
        Image.fromarray(rgb).save(tmp_path / f"img{i}.png")
        rows.append({"file_name": f"img{i}.png", "text": f"red box {i}", "split": split, "weather": "dry"})
    _write_jsonl(tmp_path / "metadata.jsonl", rows)
    return tmp_path


def test_cli_import_split_column(tmp_path, monkeypatch, capsys):
    root = tmp_path / "photos"
    root.mkdir()
    _split_rows(root, ["train", "val", "train", "Validation", "test", "train"])  # "test": not a split
    fake = _fake_writer(monkeypatch)
    rc = _run_cli(["import", "--source", "imagefolder", "--root", str(root), "--out", str(tmp_path / "out"),
                   "--size", "16", "--split-column", "split"])  # fmt: skip
    assert rc == 0
    ((_, splits, _, keys, totals),) = fake.calls
    assert [s["id"] for s in splits["train"]] == ["img0", "img2", "img5"]
    assert [s["id"] for s in splits["val"]] == ["img1", "img3"]
    assert totals == {"train": 3, "val": 2}
    assert all("split" not in s["metadata"] and s["metadata"]["weather"] == "dry" for s in splits["train"])
    out = capsys.readouterr().out
    assert "splits: train 3, val 2" in out and "bad metadata line" in out and "'test'" in out

    rc = _run_cli(["import", "--source", "imagefolder", "--root", str(root), "--out", str(tmp_path / "out2"),
                   "--split-column", "fold"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--split-column fold" in err and "no row" in err
    rc = _run_cli(["import", "--source", "folders", "--root", str(root), "--out", str(tmp_path / "out3"),
                   "--split-column", "split"])  # fmt: skip
    assert rc == 2 and "only applies to --source imagefolder" in capsys.readouterr().err


@pytest.mark.parametrize("per_folder_metadata", [False, True])
def test_cli_import_split_folders(tmp_path, monkeypatch, capsys, per_folder_metadata):
    root = tmp_path / "photos"
    for split, n in (("train", 3), ("val", 2)):
        folder = root / split / "cats"
        folder.mkdir(parents=True)
        rows = []
        for i in range(n):
            Image.fromarray(_scene()[0]).save(folder / f"{i}.png")
            rows.append({"file_name": f"cats/{i}.png", "text": f"cat {split} {i}"})
        if per_folder_metadata:
            _write_jsonl(root / split / "metadata.jsonl", rows)
    fake = _fake_writer(monkeypatch)
    rc = _run_cli(["import", "--source", "imagefolder", "--root", str(root), "--out", str(tmp_path / "out"),
                   "--size", "16", "--val-fraction", "0.5"])  # fmt: skip
    assert rc == 0
    ((_, splits, _, keys, _),) = fake.calls
    assert [s["id"] for s in splits["train"]] == ["train/cats/0", "train/cats/1", "train/cats/2"]
    assert [s["id"] for s in splits["val"]] == ["val/cats/0", "val/cats/1"]
    assert ("caption" in keys) == per_folder_metadata
    if per_folder_metadata:
        assert splits["val"][1]["caption"] == "cat val 1"
    out = capsys.readouterr().out
    assert "splits from folders" in out and "splits: train 3, val 2" in out


def test_import_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        _run_cli(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.1)" in text and "--split-column NAME" in text
