"""Every command-line writer: a non-empty --out it did not write is refused (exit 2, one line naming the
path and --overwrite, the existing tree byte-identical), an --out that is / contains / lies inside an
input is refused even with --overwrite, and --overwrite is accepted."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image
from robustness_testing import error_line, tree_hash

from fourm.cli.bundle import main as bundle_main
from fourm.cli.data import main as data_main
from fourm.cli.generate import main as generate_main
from fourm.cli.pack import main as pack_main
from fourm.cli.retrieve import main as retrieve_main
from fourm.cli.tokenizer import main as tokenizer_main
from fourm.cli.train import main as train_main


@pytest.fixture
def foreign(tmp_path):
    """A user's folder with files of their own."""
    d = tmp_path / "notes"
    (d / "sub").mkdir(parents=True)
    (d / "todo.txt").write_text("buy milk")
    (d / "sub" / "photo.png").write_bytes(b"\x89PNG not really")
    return d


def _argv(case: str, tmp_path, world_raw, text_tokenizer_dir, out) -> tuple:
    """(main, argv writing to ``out``) of each writer; inputs are real where the command reads them first."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: {{datasets: [{{path: {world_raw}}}]}}\n")
    out = str(out)
    return {
        "world": (data_main, ["world", "--out", out, "--num", "2", "--size", "32", "--workers", "0"]),
        "import": (data_main, ["import", "--source", "imagefolder", "--root", str(tmp_path / "imgs"), "--out", out]),
        "show": (data_main, ["show", "--data", str(world_raw), "--num", "2", "--out", out]),
        "tokenize": (data_main, ["tokenize", "--data", str(world_raw), "--out", out, "--modalities", "caption",
                                 "--tokenizer", f"caption={text_tokenizer_dir}"]),
        "embed": (data_main, ["embed", "--data", str(world_raw), "--out", out]),
        "tokenizer-train": (tokenizer_main, ["train", "--config", "configs/tokenizers/rgb.yaml", "--data", str(world_raw), "--out", out]),
        "train-text": (tokenizer_main, ["train-text", "--data", str(world_raw), "--out", out, "--vocab-size", "500"]),
        "train-vector": (tokenizer_main, ["train-vector", "--data", str(world_raw), "--key", "v", "--out", out]),
        "pack": (pack_main, [str(model), out]),
        "bundle": (bundle_main, [str(model), out]),
        "retrieve-index": (retrieve_main, ["index", "--data", str(world_raw), "--key-modality", "rgb", "--out", out]),
        "train": (train_main, ["--config", str(cfg), "--out", out]),
        "generate": (generate_main, ["--model", str(model), "--target", "caption", "--out", out]),
    }[case]


CASES = ["world", "import", "show", "tokenize", "embed", "tokenizer-train", "train-text", "train-vector", "pack",
         "bundle", "retrieve-index", "train", "generate"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_foreign_out_is_refused_and_left_untouched(case, tmp_path, foreign, world_raw, text_tokenizer_dir, capsys):
    (tmp_path / "imgs").mkdir()
    flag = {"pack": "dst", "bundle": "out"}.get(case, "--out")
    for target in (foreign, foreign / "todo.txt"):  # a folder, and a file
        before = tree_hash(foreign)
        main, argv = _argv(case, tmp_path, world_raw, text_tokenizer_dir, target)
        assert main(argv) == 2
        line = error_line(capsys)
        assert f"{flag} {target} already exists" in line and "--overwrite" in line, line
        assert tree_hash(foreign) == before
        assert not list(tmp_path.glob(".*.lock")) and not list(foreign.glob(".*.lock"))


@pytest.mark.parametrize("case", CASES)
def test_out_overlapping_an_input_is_refused_even_with_overwrite(case, tmp_path, world_raw, text_tokenizer_dir, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (40, 40), (200, 0, 0)).save(imgs / "a.png")
    data = tmp_path / "raw"
    shutil.copytree(world_raw, data)
    model = tmp_path / "model"
    # the input each command reads that the --out is made to be / to lie inside
    source = {"import": imgs, "pack": model, "bundle": model, "generate": model, "world": None}.get(case, data)
    if case == "world":  # its only input is --config: an --out holding it
        source = tmp_path / "cfgdir"
        source.mkdir()
        (source / "world.yaml").write_text("size: 32\n")
    main, argv = _argv(case, tmp_path, world_raw, text_tokenizer_dir, tmp_path / "x")
    argv = [a.replace(str(world_raw), str(data)) for a in argv]
    (tmp_path / "train.yaml").write_text(f"data: {{datasets: [{{path: {data}}}]}}\n")
    if case == "world":
        argv += ["--config", str(source / "world.yaml")]
    before = {p: tree_hash(p) for p in (imgs, data, tmp_path / "model")}
    outs = [source, source / "inside"] if case != "world" else [source]
    for out in outs:
        run = [str(out) if a == str(tmp_path / "x") else a for a in argv]
        assert main([*run, "--overwrite"]) == 2
        line = error_line(capsys)
        assert str(out) in line and (" is the input" in line or "lies inside the input" in line or "contains the input" in line), line
    assert {p: tree_hash(p) for p in before} == before


def test_world_overwrite_and_rerun_accepted(tmp_path, foreign, capsys):
    argv = ["world", "--out", str(foreign), "--num", "2", "--size", "32", "--workers", "0"]
    assert data_main(argv) == 2
    assert data_main([*argv, "--overwrite"]) == 0, capsys.readouterr().err
    assert not (foreign / "todo.txt").exists() and (foreign / "fourm_dataset.json").is_file()
    assert data_main(argv) == 0  # its own output: a re-run replaces it
    file = tmp_path / "file.png"
    file.write_bytes(b"user picture")
    assert data_main(["world", "--out", str(file), "--num", "2", "--size", "32", "--workers", "0"]) == 2
    assert file.read_bytes() == b"user picture"


def test_show_replaces_its_own_png_not_others(tmp_path, world_raw, capsys):
    out = tmp_path / "grid.png"
    Image.new("RGB", (4, 4)).save(out)  # the user's picture
    before = tree_hash(out)
    argv = ["show", "--data", str(world_raw), "--num", "2", "--out", str(out)]
    assert data_main(argv) == 2 and "--overwrite" in error_line(capsys)
    assert tree_hash(out) == before
    assert data_main([*argv, "--overwrite"]) == 0
    assert data_main(argv) == 0  # written by fourm-data show: replaced without --overwrite


def test_train_text_reruns_into_its_own_output(tmp_path, world_raw, capsys):
    out = tmp_path / "text"
    argv = ["train-text", "--data", str(world_raw), "--out", str(out), "--vocab-size", "500"]
    assert tokenizer_main(argv) == 0, capsys.readouterr().err
    assert tokenizer_main(argv) == 0, capsys.readouterr().err  # marked as its own: replaced
    (out / "mine.txt").write_text("x")  # a file of the user's in it: never replaced
    before = tree_hash(out)
    assert tokenizer_main(argv) == 2 and str(out) in error_line(capsys)
    assert tree_hash(out) == before


def test_pack_overwrite_accepted(tmp_path, foreign, capsys):
    import torch
    from safetensors.torch import save_file

    src = tmp_path / "m"
    src.mkdir()
    (src / "config.json").write_text("{}")
    save_file({"w": torch.ones(4)}, str(src / "model.safetensors"))
    assert pack_main([str(src), str(foreign)]) == 2
    assert pack_main([str(src), str(foreign), "--overwrite"]) == 0, capsys.readouterr().err
    assert (foreign / "model.safetensors").is_file() and not (foreign / "todo.txt").exists()
    assert pack_main([str(src), str(foreign)]) == 0  # its own output


def test_all_bad_import_keeps_the_old_dataset(tmp_path, world_raw, capsys):
    out = tmp_path / "ds"
    shutil.copytree(world_raw, out)
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_text("not an image")
    before = tree_hash(out)
    argv = ["import", "--source", "imagefolder", "--root", str(bad), "--out", str(out), "--overwrite"]
    assert data_main(argv) == 2
    assert "could be loaded" in error_line(capsys)
    assert tree_hash(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]  # no temporaries left
