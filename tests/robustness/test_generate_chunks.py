"""``generate.py --num-samples N`` above ``--chunk-size``: generated and written chunk by chunk (each
chunk folder atomic, ``progress.json`` after each), a progress bar over the chunks, a line per chunk,
seeds per chunk, any N (1000000000 streams until interrupted instead of being refused or silent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from robustness_testing import error_line, tree_hash

from fourm.cli.generate import chunk_name, chunk_seed, main
from fourm.testing.bundles import build_toy_bundle

TARGETS = ["--target", "rgb", "caption"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", image_size=32)


def _run(bundle: Path, out: Path, *args: str) -> int:
    return main(["--model", str(bundle), "--out", str(out), "--fp32", *args])


def _same_folder(a: Path, b: Path) -> None:
    """Same sample folders, PNG pixels and sequences.json."""
    assert json.loads((a / "sequences.json").read_text()) == json.loads((b / "sequences.json").read_text())
    names = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert names and names == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    for name in names:
        np.testing.assert_array_equal(np.asarray(Image.open(a / name)), np.asarray(Image.open(b / name)))


def test_chunk_seeds():
    assert chunk_seed(7, 0) == 7 and chunk_seed(-3, 0) == -3
    seeds = {chunk_seed(s, k) for s in range(4) for k in range(1, 50)}
    assert len(seeds) == 4 * 49 and all(0 <= x < 2**63 for x in seeds)
    assert chunk_seed(0, 1) != 1 and chunk_seed(0, 1) == chunk_seed(0, 1)  # no overlap with the run of --seed 1
    assert chunk_seed(-1, 2) >= 0
    assert chunk_name(3, 10) == "chunk_00003" and chunk_name(3, 15_625_000) == "chunk_00000003"


def test_chunks_are_streamed_and_reproducible(bundle, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(bundle, out, *TARGETS, "--num-samples", "5", "--chunk-size", "2", "--seed", "3", "--no-progress") == 0
    stdout = capsys.readouterr().out.splitlines()
    assert [line.split(" -> ")[0] for line in stdout[:3]] == [
        "chunk 1/3: samples 0..1", "chunk 2/3: samples 2..3", "chunk 3/3: samples 4..4"
    ]  # fmt: skip
    assert stdout[-1].startswith(f"wrote 5 sample(s) of rgb, caption in 3 chunk(s) of 2 to {out}")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "chunk_00000", "chunk_00001", "chunk_00002", "progress.json"
    ]  # fmt: skip
    progress = json.loads((out / "progress.json").read_text())
    assert progress["num_samples"] == 5 and progress["num_chunks"] == 3 and progress["chunk_size"] == 2
    assert progress["chunks_done"] == 3 and progress["samples_done"] == 5 and progress["complete"] is True
    counts = [json.loads((out / f"chunk_0000{k}" / "sequences.json").read_text())["num_samples"] for k in range(3)]
    assert counts == [2, 2, 1]
    seeds = [json.loads((out / f"chunk_0000{k}" / "sequences.json").read_text())["seed"] for k in range(3)]
    assert seeds == [3, chunk_seed(3, 1), chunk_seed(3, 2)]
    # chunk 0 is the single-folder run of --seed 3; chunk 1 that of its chunk seed
    assert _run(bundle, tmp_path / "one", *TARGETS, "--num-samples", "2", "--seed", "3", "--no-progress") == 0
    _same_folder(out / "chunk_00000", tmp_path / "one")
    assert _run(bundle, tmp_path / "two", *TARGETS, "--num-samples", "2", "--seed", str(seeds[1]), "--no-progress") == 0
    _same_folder(out / "chunk_00001", tmp_path / "two")
    # same seed, same files; another seed, other samples
    assert _run(bundle, tmp_path / "again", *TARGETS, "--num-samples", "5", "--chunk-size", "2", "--seed", "3",
                "--no-progress") == 0  # fmt: skip
    assert tree_hash(tmp_path / "again") == tree_hash(out)
    assert _run(bundle, tmp_path / "other", *TARGETS, "--num-samples", "5", "--chunk-size", "2", "--seed", "4",
                "--no-progress") == 0  # fmt: skip
    assert tree_hash(tmp_path / "other") != tree_hash(out)
    # a larger --num-samples keeps every full chunk
    assert _run(bundle, tmp_path / "more", *TARGETS, "--num-samples", "6", "--chunk-size", "2", "--seed", "3",
                "--no-progress") == 0  # fmt: skip
    for k in (0, 1):
        _same_folder(out / f"chunk_0000{k}", tmp_path / "more" / f"chunk_0000{k}")


def test_progress_bar_over_chunks(bundle, tmp_path, capsys):
    assert _run(bundle, tmp_path / "run", "--target", "rgb", "--num-samples", "3", "--chunk-size", "1") == 0
    err = capsys.readouterr().err
    assert "chunks" in err and "3/3" in err


def test_huge_num_samples_streams_until_interrupted(bundle, tmp_path, capsys, monkeypatch):
    """--num-samples 1000000000 used to be refused (or, before that, ran silently until killed): now
    chunks appear one by one; an interrupt leaves the finished chunks and an honest progress.json."""
    from fourm.generation.pipeline import FourMPipeline

    calls = []
    generate = FourMPipeline.generate

    def interrupted_third_time(self, *args, **kwargs):
        calls.append(kwargs["num_samples"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(FourMPipeline, "generate", interrupted_third_time)
    out = tmp_path / "run"
    assert _run(bundle, out, "--target", "caption", "--num-samples", "1000000000", "--chunk-size", "4", "--no-progress") == 130
    captured = capsys.readouterr()
    assert "chunk 2/250000000: samples 4..7" in captured.out and "interrupted" in captured.err
    assert calls == [4, 4, 4]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("chunk")) == ["chunk_000000000", "chunk_000000001"]
    progress = json.loads((out / "progress.json").read_text())
    assert (progress["chunks_done"], progress["samples_done"], progress["complete"]) == (2, 8, False)
    assert progress["num_chunks"] == 250_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no lock, no temporary left


def test_chunked_run_respects_out_rules(bundle, tmp_path, capsys):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("buy milk")
    before = tree_hash(foreign)
    args = ["--target", "rgb", "--num-samples", "3", "--chunk-size", "2", "--no-progress"]
    assert _run(bundle, foreign, *args) == 2
    assert "--overwrite" in error_line(capsys)
    assert tree_hash(foreign) == before
    assert _run(bundle, foreign, *args, "--overwrite") == 0
    assert not (foreign / "todo.txt").exists() and (foreign / "chunk_00001" / "sample_000" / "rgb.png").is_file()
    assert _run(bundle, foreign, *args) == 2  # generate.py never re-runs into a non-empty --out
    assert "is not empty" in error_line(capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--num-samples", "0"], "--num-samples must be >= 1, got 0"),
     (["--num-samples", "-5"], "--num-samples must be >= 1, got -5"),
     (["--chunk-size", "0"], "--chunk-size: expected an integer in [1, 256], got '0'"),
     (["--chunk-size", "257"], "--chunk-size: expected an integer in [1, 256], got '257'"),
     (["--chunk-size", "many"], "'many'")],
)  # fmt: skip
def test_bad_counts(bundle, tmp_path, capsys, args, message):
    assert _run(bundle, tmp_path / "out", "--target", "rgb", *args) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_prompts_keep_their_bound(bundle, tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red circle\n")
    assert main(["--model", str(bundle), "--out", str(tmp_path / "out"), "--prompts", str(prompts), "--target", "rgb",
                 "--num-samples", "300"]) == 2  # fmt: skip
    assert "--num-samples with --prompts must be at most 256, got 300" in error_line(capsys)
