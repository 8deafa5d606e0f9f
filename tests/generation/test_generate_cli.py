"""``fourm-generate`` on a toy bundle: output files and their contents, seeds, options, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fourm.cli.generate import main
from fourm.data.visualize import HEADER_HEIGHT, PAD, TEXT_WIDTH, colorize_depth, colorize_semseg
from fourm.data.world import render_sample
from fourm.generation.pipeline import FourMPipeline
from fourm.testing.bundles import build_toy_bundle

SIZE = 32
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", image_size=SIZE)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 64x64 world rgb picture (the CLI resizes it to the toy size)."""
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(render_sample(index=1, seed=0)["rgb"]).save(path)
    return path


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _run(bundle, out, *args) -> int:
    return main(["--model", str(bundle), "--out", str(out), "--no-progress", *args])


def test_output_folder(bundle, photo, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--cond", "caption=a red circle", "--cond", f"rgb={photo}",
            "--target", "bboxes", "depth", "semseg", "edges", "metadata", "--num-samples", "2", "--seed", "3"]  # fmt: skip
    assert _run(bundle, out, *args) == 0
    assert f"to {out}" in capsys.readouterr().out
    info = json.loads((out / "sequences.json").read_text())
    assert info["num_samples"] == 2 and info["seed"] == 3
    assert info["conditions"] == ["caption", "rgb"] and info["targets"] == ["bboxes", "depth", "semseg", "edges", "metadata"]
    assert len(info["samples"]) == 2
    for sample in info["samples"]:
        assert set(sample) == {"caption", "bboxes", "metadata", "parse_failures"}
        assert set(sample["parse_failures"]) == {"bboxes", "metadata"}  # the structured targets
        assert sample["caption"] == "a red circle" and isinstance(sample["bboxes"], list)
        assert isinstance(sample["metadata"], dict)
    # the same generation through the API gives the files' contents
    pipe = FourMPipeline.from_pretrained(bundle, device="cpu")
    result = pipe.generate({"caption": "a red circle", "rgb": str(photo)}, ["bboxes", "depth", "semseg", "edges", "metadata"],
                           num_samples=2, seed=3, progress=False)  # fmt: skip
    for i in range(2):
        folder = out / f"sample_{i:03d}"
        assert sorted(p.name for p in folder.iterdir()) == [
            "depth.png", "edges.png", "rgb.png", "rgb_with_boxes.png", "semseg.png"
        ]  # fmt: skip
        rgb = _png(folder / "rgb.png")
        assert rgb.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(rgb, result.values["rgb"][i])  # the condition as the model saw it
        np.testing.assert_array_equal(_png(folder / "depth.png"), colorize_depth(result.values["depth"][i]))
        np.testing.assert_array_equal(_png(folder / "semseg.png"), colorize_semseg(result.values["semseg"][i]))
        edges = _png(folder / "edges.png")
        assert edges.shape == (SIZE, SIZE) and set(np.unique(edges)) <= {0, 255}
        np.testing.assert_array_equal(edges > 0, result.values["edges"][i] > 0.5)
        assert _png(folder / "rgb_with_boxes.png").shape == (256, 256, 3)
        assert info["samples"][i]["bboxes"] == result.values["bboxes"][i]
        assert info["samples"][i]["metadata"] == result.values["metadata"][i]
        assert info["samples"][i]["parse_failures"] == {m: result.parse_failures[m][i] for m in ("bboxes", "metadata")}
    # overview: 2 rows; columns caption (text, 2 cells), rgb + boxes, depth, semseg, edges, metadata (text)
    cell = SIZE * 2
    widths = [TEXT_WIDTH * cell, cell, cell, cell, cell, TEXT_WIDTH * cell]
    assert _png(out / "overview.png").shape == (HEADER_HEIGHT + PAD + 2 * (cell + PAD), PAD + sum(w + PAD for w in widths), 3)


def test_seeds(bundle, tmp_path):
    args = ["--cond", "bboxes=circle 0.1 0.1 0.4 0.4", "--target", "rgb", "caption"]
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert _run(bundle, tmp_path / name, *args, "--seed", seed, "--fp32") == 0
    same = [_png(tmp_path / n / "sample_000" / "rgb.png") for n in "abc"]
    texts = [(tmp_path / n / "sequences.json").read_text() for n in "ab"]
    np.testing.assert_array_equal(same[0], same[1])
    assert texts[0] == texts[1]
    assert not np.array_equal(same[0], same[2])


def test_per_target_options_reach_the_plan(bundle, tmp_path):
    out = tmp_path / "out"
    assert _run(bundle, out, "--target", "rgb", "caption", "--steps", "rgb=3", "--scheme", "rgb=roar",
                "--guidance", "rgb=2.0", "--temperature", "rgb=1.5", "--top-p", "caption=0.5",
                "--caption-prefix", "a red", "--no-repeat-ngram", "caption=4", "--repetition-penalty", "caption=1.3",
                "--fp32") == 0  # fmt: skip
    info = json.loads((out / "sequences.json").read_text())
    rgb, caption = info["plan"]["targets"]
    assert (rgb["steps"], rgb["scheme"], rgb["guidance_scale"], rgb["temperature"]) == (3, "roar", 2.0, 1.5)
    assert (caption["scheme"], caption["top_p"], caption["no_repeat_ngram"]) == ("ar", 0.5, 4)
    assert caption["repetition_penalty"] == 1.3
    assert info["samples"][0]["caption"].startswith("a red")
    assert (out / "sample_000" / "rgb.png").is_file() and not (out / "sample_000" / "rgb_with_boxes.png").exists()


def test_candidates_and_rerank_by_reach_the_plan(bundle, tmp_path):
    out = tmp_path / "out"
    assert _run(bundle, out, "--cond", "caption=a red circle", "--target", "rgb", "depth", "--steps", "rgb=1",
                "--steps", "depth=1", "--candidates", "rgb=3", "--rerank-by", "rgb=caption", "--candidates", "depth=2",
                "--rerank-by", "depth=caption+rgb", "--fp32") == 0  # fmt: skip
    rgb, depth = json.loads((out / "sequences.json").read_text())["plan"]["targets"]
    assert (rgb["candidates"], rgb["rerank_by"]) == (3, ["caption"])
    assert (depth["candidates"], depth["rerank_by"]) == (2, ["caption", "rgb"])


def test_default_out_dir_and_overwrite(bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--model", str(bundle), "--target", "edges", "--no-progress", "--fp32"]) == 0
    (run,) = (tmp_path / "outputs").iterdir()
    assert (run / "sample_000" / "edges.png").is_file()
    assert _run(bundle, run, "--target", "depth") == 2  # not empty: refused
    assert _run(bundle, run, "--target", "depth", "--overwrite", "--fp32") == 0
    assert sorted(p.name for p in (run / "sample_000").iterdir()) == ["depth.png"]


@pytest.fixture(scope="module")
def input_only_bundle(tmp_path_factory) -> Path:
    return build_toy_bundle(tmp_path_factory.mktemp("io") / "b", image_size=SIZE, modalities=("rgb", "caption"), input_only=("caption",))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "normals"], "unknown modality 'normals' (known: rgb, depth, semseg, edges, caption"),
        (["--cond", "nope=1", "--target", "rgb"], "unknown modality 'nope'"),
        (["--cond", "rgb=BAD", "--target", "depth"], "cannot read image"),
        (["--cond", "rgb=missing.png", "--target", "depth"], "image file not found"),
        (["--cond", "bboxes=circle 0.1 0.1", "--target", "rgb"], "malformed box 'circle 0.1 0.1'"),
        (["--cond", "caption=a", "--target", "caption"], "'caption' is both a condition and a target"),
        (["--cond", "caption", "--target", "rgb"], "malformed --cond 'caption'"),
        (["--target", "rgb", "--steps", "rgb=many"], "--steps rgb=many: expected an integer"),
        (["--target", "rgb", "--steps", "depth=3"], "'depth' is not a target"),
        (["--target", "rgb", "--scheme", "rgb=ar"], "scheme 'ar' does not apply"),
        (["--target", "rgb", "--num-samples", "0"], "--num-samples must be >= 1"),
        (["--target", "rgb", "--candidates", "rgb=2"], "candidates 2 need something to rerank by"),
        (["--target", "rgb", "--candidates", "rgb=0"], "candidates must be in 1..64"),
        (["--target", "rgb", "--no-repeat-ngram", "rgb=3"], "applies to scheme ar only"),
        (["--target", "rgb", "--prefix", "caption=a"], "partial 'caption' is not a target"),
        (["--target", "rgb", "--device", "cuda:7"] if not torch.cuda.is_available() else ["--target", "x"], "error"),
    ],
)
def test_errors_are_one_line(bundle, tmp_path, capsys, args, message):
    (tmp_path / "BAD").write_bytes(b"\x89PNG garbage")
    args = [a.replace("BAD", str(tmp_path / "BAD")).replace("missing.png", str(tmp_path / "missing.png")) for a in args]
    assert _run(bundle, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "out").exists()


def test_input_only_target_is_an_error(input_only_bundle, tmp_path, capsys):
    assert _run(input_only_bundle, tmp_path / "out", "--target", "caption") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: modality 'caption' cannot be a target") and err.count("\n") == 1


def test_generate_py_entry_point(bundle, tmp_path, monkeypatch, capsys):
    """The top-level script dispatches to fourm.cli.generate (run in-process: importing torch in a
    subprocess is slow on a busy machine)."""
    import runpy

    argv = ["generate.py", "--model", str(bundle), "--target", "normals", "--out", str(tmp_path / "o")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "generate.py"), run_name="__main__")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown modality 'normals'") and err.count("\n") == 1
