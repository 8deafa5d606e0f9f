"""What ``bench/bad_inputs.py`` found and was fixed: a raw dataset without marker is recognised as an
output of ``import`` / ``world`` only by its recorded source; device names, world counts and an empty
world config give one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from robustness_testing import error_line, tree_hash

from fourm.cli.data import main as data_main


def test_import_does_not_replace_an_unmarked_world_dataset(tmp_path, world_raw, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (40, 40), (200, 0, 0)).save(imgs / "a.png")
    (imgs / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "red"}) + "\n")
    out = shutil.copytree(world_raw, tmp_path / "ds")  # written by the API: no marker
    before = tree_hash(out)
    assert data_main(["import", "--source", "imagefolder", "--root", str(imgs), "--out", str(out)]) == 2
    assert "--overwrite" in error_line(capsys)
    assert tree_hash(out) == before


def test_world_does_not_replace_an_unmarked_imported_dataset(tmp_path, world_raw, capsys):
    out = shutil.copytree(world_raw, tmp_path / "ds")
    info = json.loads((out / "fourm_dataset.json").read_text())
    info["source"] = "imagefolder(/somewhere)"
    (out / "fourm_dataset.json").write_text(json.dumps(info))
    before = tree_hash(out)
    assert data_main(["world", "--out", str(out), "--num", "2", "--size", "32", "--workers", "0"]) == 2
    assert "--overwrite" in error_line(capsys)
    assert tree_hash(out) == before


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["world", "--num", "0"], "--num: expected an integer in [1, 100000000], got '0'"),
     (["world", "--num", "2", "--workers", "-2"], "--workers: expected an integer in [0, 256], got '-2'"),
     (["world", "--num", "2", "--config", "{empty}"], "is empty"),
     (["tokenize", "--data", "{raw}", "--device", "gpu9"], "got 'gpu9'"),
     (["embed", "--data", "{raw}", "--device", "gpu9"], "got 'gpu9'")],
)  # fmt: skip
def test_one_line_errors(argv, expected, tmp_path, world_raw, capsys):
    (tmp_path / "empty.yaml").write_text("")
    argv = [a.replace("{empty}", str(tmp_path / "empty.yaml")).replace("{raw}", str(world_raw)) for a in argv]
    before = tree_hash(world_raw)
    assert data_main([argv[0], "--out", str(tmp_path / "out"), *argv[1:]]) == 2
    assert expected in error_line(capsys)
    assert tree_hash(world_raw) == before and not (tmp_path / "out").exists()
