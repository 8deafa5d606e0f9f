"""What ``bench/bad_inputs.py`` found and was fixed: a raw dataset without marker is recognised as an
output of ``import`` / ``world`` only by its recorded source; device names, world counts and an empty
world config give one-line errors. Then (the rest of the survey): generate.py --cond / --prefix values,
--threads, --seed and --steps; fourm-retrieve counts and --via; fourm-pack configs; fourm-recipe
--device and --out; import's malformed metadata.jsonl line; tokenizer train --max-minutes and an empty
config; embed --name."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from robustness_testing import error_line, tree_hash

from fourm.cli.data import main as data_main
from fourm.testing.bundles import build_toy_bundle
from fourm.testing.retrieval import toy_retrieval_pipeline


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


# ---------------------------------------------------------------------------------------------------------
# The rest of the survey (generate.py's own cases, fourm-retrieve, fourm-pack, fourm-recipe) and the
# cases left open by the first run: each is exit code 2, one error line naming the bad value, nothing
# changed.


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory):
    return build_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", image_size=32)


def _refused(capsys, run, expected: str, *unchanged) -> str:
    before = [tree_hash(p) for p in unchanged]
    assert run() == 2
    line = error_line(capsys)
    assert expected in line, line
    assert [tree_hash(p) for p in unchanged] == before
    return line


def test_import_names_the_metadata_line_that_is_not_json(tmp_path, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (40, 40), (200, 0, 0)).save(imgs / "0.png")
    (imgs / "metadata.jsonl").write_text("{not json\n")
    argv = ["import", "--source", "imagefolder", "--root", str(imgs), "--out", str(tmp_path / "out")]
    line = _refused(capsys, lambda: data_main(argv), f"{imgs / 'metadata.jsonl'}:1", imgs)
    assert "invalid JSON" in line and not (tmp_path / "out").exists()


def test_tokenizer_train_refuses_a_negative_time_limit_before_reading_the_data(tmp_path, capsys):
    from fourm.cli.tokenizer import main

    argv = ["train", "--config", "configs/tokenizers/rgb.yaml", "--data", str(tmp_path / "nope"), "--out",
            str(tmp_path / "out"), "--max-minutes", "-1"]  # fmt: skip
    line = _refused(capsys, lambda: main(argv), "--max-minutes")
    assert "'-1'" in line and "nope" not in line and not (tmp_path / "out").exists()


def test_tokenizer_train_refuses_an_empty_config(tmp_path, world_raw, capsys):
    from fourm.cli.tokenizer import main

    (tmp_path / "empty.yaml").write_text("")
    argv = ["train", "--config", str(tmp_path / "empty.yaml"), "--data", str(world_raw), "--out", str(tmp_path / "out")]
    _refused(capsys, lambda: main(argv), "empty.yaml is empty", world_raw)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "expected"), [("", "got ''"), ("rgb", "'rgb' is a built-in modality"),
                                                ("Caption Vec", "got 'Caption Vec'")])  # fmt: skip
def test_embed_refuses_a_bad_column_name(name, expected, tmp_path, world_raw, capsys):
    argv = ["embed", "--data", str(world_raw), "--out", str(tmp_path / "out"), "--name", name]
    line = _refused(capsys, lambda: data_main(argv), expected, world_raw)
    assert "--name" in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--target", "rgb", "--threads", "100000"], "--threads: expected an integer in [1, 1024]"),
     (["--target", "rgb", "--seed", "100000000000000000000000"], "--seed"),
     (["--target", "rgb", "--steps", "rgb=100000000"], "--steps rgb=100000000: 'rgb' has 16 tokens"),
     (["--target", "rgb", "--cond", "bboxes=circle 0.5 nope"], "--cond bboxes=...: malformed box"),
     (["--target", "rgb", "--cond", "bboxes=circle 0.5 0.5 2 2"], "--cond bboxes=..."),
     (["--target", "rgb", "--cond", "bboxes=circle nan 0 1 1"], "--cond bboxes=..."),
     (["--target", "rgb", "--cond", "color_palette=red"], "--cond color_palette=...: malformed colour 'red'"),
     (["--target", "rgb", "--prefix", "rgb=x"], "--prefix rgb=...")],
)  # fmt: skip
def test_generate_one_line_errors(args, expected, toy_bundle, tmp_path, capsys):
    from fourm.cli.generate import main

    out = tmp_path / "out"
    argv = ["--model", str(toy_bundle), "--out", str(out), "--no-progress", *args]
    _refused(capsys, lambda: main(argv), expected, toy_bundle)
    assert not out.exists()


def test_generate_prompts_refuse_too_many_steps(toy_bundle, tmp_path, capsys):
    from fourm.cli.generate import main

    (tmp_path / "p.txt").write_text("a red circle\n")
    argv = ["--model", str(toy_bundle), "--out", str(tmp_path / "out"), "--prompts", str(tmp_path / "p.txt"),
            "--target", "rgb", "--steps", "rgb=17"]  # fmt: skip
    _refused(capsys, lambda: main(argv), "at most 16 steps", toy_bundle)


@pytest.fixture(scope="module")
def retrieval_bundle(tmp_path_factory):
    return toy_retrieval_pipeline().save_pretrained(tmp_path_factory.mktemp("toy") / "retrieval_bundle")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["query", "--index", "{x}", "--cond", "caption=a", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
     (["index", "--data", "{x}", "--key-modality", "rgb", "--out", "{out}", "--num", "0"], "--num must be >= 1, got 0"),
     (["eval", "--data", "{x}", "--query", "caption", "--key", "rgb", "--num", "-5"], "--num must be >= 1, got -5"),
     (["index", "--data", "{raw}", "--key-modality", "rgb", "--out", "{out}", "--align-dim", "0"],
      "align_dim must be >= 1, got 0 (--align-dim)"),
     (["eval", "--data", "{raw}", "--query", "caption", "--key", "rgb", "--align-samples", "0"],
      "(--align-samples)")],
)  # fmt: skip
def test_retrieve_count_errors_name_the_option(argv, expected, tmp_path, world_raw, retrieval_bundle, capsys):
    """Counts are checked before the data is read (a missing --data is not what the error is about);
    the alignment's own checks name the option too."""
    from fourm.cli.retrieve import main

    argv = [a.replace("{x}", str(tmp_path / "x")).replace("{out}", str(tmp_path / "out")).replace("{raw}", str(world_raw))
            for a in argv] + ["--bundle", str(retrieval_bundle)]  # fmt: skip
    line = _refused(capsys, lambda: main(argv), expected, world_raw, retrieval_bundle)
    assert str(tmp_path / "x") not in line and not (tmp_path / "out").exists()


def test_retrieve_names_an_unknown_via_modality(tmp_path, world_raw, retrieval_bundle, capsys):
    from fourm.cli.retrieve import main

    bundle = retrieval_bundle  # no vector modality
    argv = ["index", "--data", str(world_raw), "--bundle", str(bundle), "--key-modality", "rgb", "--out",
            str(tmp_path / "out"), "--method", "predicted", "--via", "wings"]  # fmt: skip
    _refused(capsys, lambda: main(argv), "--via wings", world_raw, bundle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("config", "expected"), [(b'{"dim": "\xff\xfe"}', "not UTF-8"), (b"{nope", "not valid JSON"),
                                                  (b"[1, 2]", "JSON list")])  # fmt: skip
def test_pack_refuses_a_broken_config(config, expected, toy_bundle, tmp_path, capsys):
    from fourm.cli.pack import main

    src = shutil.copytree(toy_bundle / "model", tmp_path / "model")
    (src / "config.json").write_bytes(config)
    line = _refused(capsys, lambda: main([str(src), str(tmp_path / "packed")]), expected, src)
    assert "config.json" in line and not (tmp_path / "packed").exists()


def test_recipe_refuses_a_bad_device_and_a_foreign_out_before_reading_images(tmp_path, capsys):
    from fourm.cli.recipe import main

    imgs = tmp_path / "imgs"  # too few images: the out / device errors must come first
    imgs.mkdir()
    Image.new("RGB", (40, 40), (200, 0, 0)).save(imgs / "0.png")
    (imgs / "metadata.jsonl").write_text(json.dumps({"file_name": "0.png", "text": "red"}) + "\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("buy milk")
    base = ["folder", "--root", str(imgs), "--tiny"]
    _refused(capsys, lambda: main([*base, "--out", str(tmp_path / "r"), "--device", "gpu9"]), "got 'gpu9'", imgs)
    line = _refused(capsys, lambda: main([*base, "--out", str(notes)]), f"--out {notes} already exists", imgs, notes)
    assert "fourm-recipe" in line and not (tmp_path / "r").exists()
