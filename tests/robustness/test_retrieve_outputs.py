"""The single-file outputs of ``fourm-retrieve query --out`` (a PNG strip) and ``fourm-retrieve eval --json``
(a JSON report): written atomically, never replacing a file they did not write unless ``--overwrite``, never
an input or inside one (even with ``--overwrite``), locked while written. Every refusal: exit code 2, one
``error:`` line naming the path, and the files on disk byte-identical (tree hashes before and after).

Toy bundle and toy world (:mod:`fourm.testing.retrieval`): nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from PIL import Image
from robustness_testing import error_line, tree_hash

from fourm.cli.retrieve import main
from fourm.testing.retrieval import toy_retrieval_pipeline, write_toy_world
from fourm.utils.atomic import host_id
from fourm.utils.outputs import lock_path, png_info, png_written_by


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def toys(tmp_path_factory) -> dict[str, Path]:
    """A toy bundle, a toy world (8 train + 8 val at 32 px) and a pooled rgb index of its val split."""
    root = tmp_path_factory.mktemp("retrieve_outputs")
    bundle = toy_retrieval_pipeline().save_pretrained(root / "bundle")
    world = write_toy_world(root / "world", num=16)
    index = root / "index"
    argv = [
        "index",
        "--data",
        world,
        "--key-modality",
        "rgb",
        "--out",
        index,
        "--bundle",
        bundle,
        "--align-dim",
        2,
    ]
    assert main([str(a) for a in argv]) == 0
    return {"bundle": Path(bundle), "world": Path(world), "index": index}


@pytest.fixture
def inputs_unchanged(toys):
    """Asserts after the test that the bundle, the data and the index are byte-identical."""
    before = {name: tree_hash(path) for name, path in toys.items()}
    yield
    assert {name: tree_hash(path) for name, path in toys.items()} == before


def query(toys, out, *extra) -> int:
    argv = [
        "query",
        "--index",
        toys["index"],
        "--cond",
        "caption=a red circle",
        "--top-k",
        2,
        "--out",
        out,
        *extra,
    ]
    return main([str(a) for a in argv])


def evaluate(toys, out, *extra, bundle=None) -> int:
    argv = ["eval", "--data", toys["world"], "--query", "caption", "--key", "rgb", "--align-split", "train",
            "--align-dim", 2, "--bundle", bundle or toys["bundle"], "--json", out, *extra]  # fmt: skip
    return main([str(a) for a in argv])


def no_leftovers(folder: Path) -> list[str]:
    """Locks and atomic-write temporaries left in ``folder``."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name.startswith(".") and p.name.endswith((".lock", ".tmp", ".old"))
    )


def refused(capsys, folder: Path, run, *must: str) -> str:
    """Run ``run()``; assert exit code 2, one error line holding ``must``, ``folder`` byte-identical and
    no lock or temporary left in it; returns the error line."""
    before = tree_hash(folder)
    assert run() == 2
    line = error_line(capsys)
    for text in must:
        assert text in line, line
    assert tree_hash(folder) == before
    assert not no_leftovers(folder), no_leftovers(folder)
    return line


def user_png(path: Path, color=(10, 200, 30)) -> Path:
    Image.new("RGB", (6, 6), color).save(path)
    return path


# ------------------------------------------------------------------------------------------- query --out
def test_query_refuses_a_file_it_did_not_write(toys, tmp_path, capsys, inputs_unchanged):
    photo = user_png(tmp_path / "holiday.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("buy milk")
    for target in (photo, notes):
        refused(
            capsys, tmp_path, lambda t=target: query(toys, t), f"--out {target} already exists", "--overwrite"
        )


def test_query_refuses_a_png_of_another_fourm_command(toys, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    Image.new("RGB", (6, 6)).save(grid, pnginfo=png_info("fourm-data show"))
    refused(
        capsys, tmp_path, lambda: query(toys, grid), "is a file written by fourm-data show", "--overwrite"
    )


def test_query_overwrite_then_reruns_into_its_own_strip(toys, tmp_path, capsys, inputs_unchanged):
    out = user_png(tmp_path / "strip.png")
    assert query(toys, out, "--overwrite") == 0, capsys.readouterr().err
    assert png_written_by(out) == "fourm-retrieve query"
    assert Image.open(out).size[0] == 4 + 3 * (128 + 4)  # the query and 2 results
    first = out.read_bytes()
    assert query(toys, out) == 0, capsys.readouterr().err  # its own output: replaced without --overwrite
    assert out.read_bytes() == first  # same query, same picture
    assert not no_leftovers(tmp_path)


def test_query_into_a_new_folder(toys, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "strip.png"
    assert query(toys, out) == 0, capsys.readouterr().err
    assert png_written_by(out) == "fourm-retrieve query"
    assert not no_leftovers(out.parent) and not no_leftovers(tmp_path / "new")


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_query_refuses_a_folder(toys, tmp_path, capsys, overwrite):
    empty = tmp_path / "empty"
    empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "a.txt").write_text("mine")
    for target in (empty, full):
        refused(capsys, tmp_path, lambda t=target: query(toys, t, *overwrite), f"--out {target}")
    assert empty.is_dir() and (full / "a.txt").read_text() == "mine"


def test_query_refuses_a_path_under_a_file(toys, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("buy milk")
    out = tmp_path / "notes.txt" / "strip.png"
    refused(capsys, tmp_path, lambda: query(toys, out, "--overwrite"), "notes.txt", "which is a file")


def test_query_never_writes_over_or_into_an_input(toys, tmp_path, capsys, inputs_unchanged):
    photo = user_png(tmp_path / "photo.png", (200, 10, 10))
    # the query picture itself, with --overwrite
    argv = ["query", "--index", toys["index"], "--cond", f"rgb={photo}", "--out", photo, "--overwrite"]
    refused(capsys, tmp_path, lambda: main([str(a) for a in argv]), f"--out {photo} is the input --cond rgb")
    cases = [
        (toys["index"] / "strip.png", "lies inside the input --index"),
        (toys["index"] / "index.json", "lies inside the input --index"),
        (toys["world"] / "strip.png", "lies inside the input the index's data"),  # read from index.json
        (toys["world"] / "train" / "strip.png", "lies inside the input the index's data"),
        (toys["bundle"] / "strip.png", "lies inside the input the index's bundle"),
    ]
    for out, message in cases:
        refused(capsys, out.parent, lambda o=out: query(toys, o, "--overwrite"), f"--out {out}", message)
        assert not out.exists() or out.name == "index.json"
    # an explicit --bundle is an input too
    out = toys["bundle"] / "strip.png"
    argv = [
        "query",
        "--index",
        toys["index"],
        "--cond",
        "caption=a",
        "--bundle",
        toys["bundle"],
        "--out",
        out,
    ]
    refused(capsys, toys["bundle"], lambda: main([str(a) for a in argv]), "lies inside the input --bundle")


def test_query_write_failure_keeps_the_old_strip(toys, tmp_path, capsys, monkeypatch):
    out = tmp_path / "strip.png"
    assert query(toys, out) == 0
    before = out.read_bytes()

    def broken_save(self, fp, *args, **kwargs):  # half a file, then the disk is full
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        query(toys, out)
    assert out.read_bytes() == before
    assert not no_leftovers(tmp_path), no_leftovers(tmp_path)


def test_query_lock_of_a_live_writer_refuses_and_a_dead_ones_is_taken_over(
    toys, tmp_path, capsys, live_pid, dead_pid
):
    out = tmp_path / "strip.png"
    lock = lock_path(out)
    holder = {
        "pid": live_pid,
        "host": host_id(),
        "hostname": socket.gethostname(),
        "command": "fourm-retrieve query",
    }
    lock.write_text(json.dumps(holder))
    before = tree_hash(tmp_path)
    assert query(toys, out) == 2
    line = error_line(capsys)
    assert f"--out {out} is being written by fourm-retrieve query (pid {live_pid}" in line, line
    assert tree_hash(tmp_path) == before and not out.exists()

    lock.write_text(json.dumps({**holder, "pid": dead_pid}))
    stale = tmp_path / f".strip.png.p{dead_pid}@{host_id()}.abc123.tmp"  # a killed writer's temporary
    stale.write_bytes(b"half a png")
    assert query(toys, out) == 0, capsys.readouterr().err
    assert png_written_by(out) == "fourm-retrieve query"
    assert not lock.exists() and not stale.exists()


# ------------------------------------------------------------------------------------------- eval --json
def test_eval_refuses_a_file_it_did_not_write_before_any_work(toys, tmp_path, capsys, inputs_unchanged):
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n')
    photo = user_png(tmp_path / "photo.png")
    for target in (notes, photo):
        refused(
            capsys,
            tmp_path,
            lambda t=target: evaluate(toys, t),
            f"--json {target} already exists",
            "--overwrite",
        )
    # refused before the model is even looked for: a missing bundle is not what is reported
    refused(capsys, tmp_path, lambda: evaluate(toys, notes, bundle=tmp_path / "no-bundle"), f"--json {notes}")


def test_eval_overwrite_then_reruns_into_its_own_report(toys, tmp_path, capsys, inputs_unchanged):
    out = tmp_path / "r.json"
    out.write_text('{"mine": true}\n')
    assert evaluate(toys, out, "--overwrite") == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["num"] == 8 and set(report["recall"]) == {"@1", "@5", "@10"}
    assert evaluate(toys, out) == 0, capsys.readouterr().err  # its own report: replaced
    assert json.loads(out.read_text())["recall"] == report["recall"]
    assert not no_leftovers(tmp_path)


def test_eval_report_from_before_markers_is_recognised(toys, tmp_path, capsys):
    out = tmp_path / "old.json"
    out.write_text(
        json.dumps({"query": ["caption"], "key": ["rgb"], "settings": {}, "recall": {}, "chance": {}})
    )
    assert evaluate(toys, out) == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["num"] == 8


def test_eval_refuses_folders_and_inputs(toys, tmp_path, capsys, inputs_unchanged):
    folder = tmp_path / "reports"
    folder.mkdir()
    refused(capsys, tmp_path, lambda: evaluate(toys, folder, "--overwrite"), f"--json {folder} is a folder")
    for out, message in [
        (toys["world"] / "r.json", "lies inside the input --data"),
        (toys["world"], "is the input --data"),
        (toys["bundle"] / "r.json", "lies inside the input --bundle"),
    ]:
        refused(capsys, out.parent, lambda o=out: evaluate(toys, o, "--overwrite"), f"--json {out}", message)
    assert not (toys["world"] / "r.json").exists() and not (toys["bundle"] / "r.json").exists()


def test_eval_write_failure_keeps_the_old_report(toys, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.json"
    assert evaluate(toys, out) == 0
    before = out.read_bytes()
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):  # the rename never happens (killed, disk error)
        if Path(dst) == out:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="Input/output error"):
        evaluate(toys, out)
    assert out.read_bytes() == before
    assert not no_leftovers(tmp_path), no_leftovers(tmp_path)


def test_query_and_eval_help_mention_overwrite(capsys):
    for sub in ("query", "eval"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        assert "--overwrite" in capsys.readouterr().out
