"""bench/eval_world.py end to end on a toy bundle: every metric present, every value in range."""

import json
import math

import pytest

from fourm.generation.testing import build_toy_bundle

UNBOUNDED = {"mae", "rmse", "abs_rel", "extra_objects", "rgb_psnr"}  # >= 0; everything else in [0, 1]


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("eval_world")


def leaves(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, dict):
            yield from leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", k, v


def test_end_to_end_on_toy_bundle(bench, tmp_path, capsys):
    bundle = build_toy_bundle(tmp_path / "bundle")
    out = tmp_path / "out"
    argv = [
        "--model",
        str(bundle),
        "--num",
        "3",
        "--batch",
        "2",
        "--steps",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert bench.main(argv) == 0
    results = json.loads((out / "eval_world.json").read_text())
    assert (out / "examples.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    for task, metric, *paths in bench.TABLE:
        assert task in printed
        assert metric in printed
        for path in paths:  # every metric of the table exists (None = undefined for these samples)
            parent, key = path.rsplit(".", 1)
            assert key in bench.lookup(results, parent), path
    values = 0
    for path, key, v in leaves({k: v for k, v in results.items() if k not in ("config", "timings_s")}):
        if v is None:
            continue
        values += 1
        assert math.isfinite(v), path
        assert v >= 0 if key in UNBOUNDED else 0 <= v <= 1, (path, v)
    assert values >= 60
    assert results["config"]["num"] == 3 and results["config"]["image_size"] == 32
    # the references are well defined even for an untrained model
    assert results["checker_ground_truth"]["presence"] >= 0.6
    assert results["tokenizer_ceiling"]["caption"]["pair_recall"] > 0.5  # toy text tokenizer, 16 tokens
    assert set(results["timings_s"]) >= {"rgb_to_semseg", "caption_to_bboxes_to_rgb"}


def test_bad_arguments(bench, tmp_path, capsys):
    assert bench.main(["--num", "1", "--out", str(tmp_path)]) == 2
    assert bench.main(["--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error: --num must be >= 2" in err and "model bundle not found" in err
