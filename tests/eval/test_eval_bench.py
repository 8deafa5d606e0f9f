"""bench/eval_world.py (the command line of fourm.eval.world) end to end on a toy bundle: every metric
present, every value in range; the library parts on their own."""

import json
import math

import pytest

from fourm.eval.world import Generator, given
from fourm.eval.world_report import TABLE, lookup
from fourm.eval.world_scores import label_f1
from fourm.testing.bundles import build_toy_bundle

UNBOUNDED = {"mae", "rmse", "abs_rel", "extra_objects", "rgb_psnr", "boxes_per_sample"}  # >= 0; everything else in [0, 1]


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
    for task, metric, *paths in TABLE:
        assert task in printed
        assert metric in printed
        for path in (p for p in paths if p != "-"):  # every metric exists (None = undefined for these samples)
            parent, key = path.rsplit(".", 1)
            assert key in lookup(results, parent), path
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
    assert "caption_to_semseg_to_rgb" not in results  # the semseg chains run only when asked for
    chained = results["caption_to_bboxes_to_rgb"]
    assert chained["parse_failures"] == 0.0  # grammar-constrained boxes always parse
    assert results["tokenizer_ceiling"]["boxes_per_sample"] >= 1


def test_bad_arguments(bench, tmp_path, capsys):
    assert bench.main(["--num", "1", "--out", str(tmp_path)]) == 2
    assert bench.main(["--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error: --num must be >= 2" in err and "model bundle not found" in err


def test_a_given_image_is_read_as_the_patch_modality():
    """A model reading rgb_pixels gets a given image as its patches alone (as generate.py feeds it),
    or with its rgb tokens too (image_inputs "both"); the patches are the image's own, and the two
    ways generate differently."""
    import numpy as np
    import torch

    from fourm.generation import GivenTokens
    from fourm.testing.bundles import toy_pipeline

    pipe = toy_pipeline(32, 0, rgb_pixels=True)
    images = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(2)]
    # the per-sample lists the bench builds: rgb becomes rgb_pixels, nothing else is added
    assert pipe.with_patch_conditions({"rgb": images}) == {"rgb_pixels": images}
    assert pipe.with_patch_conditions({"caption": ["a"]}) == {"caption": ["a"]}  # no image given
    assert toy_pipeline(32, 0).with_patch_conditions({"rgb": images}) == {"rgb": images}  # no patch modality
    cond = given(pipe, "rgb_pixels", images)
    assert isinstance(cond, GivenTokens) and torch.equal(cond.values, pipe.tokenize("rgb_pixels", images))
    samples = [{"rgb": im} for im in images]

    class Bar:
        def update(self, n):
            pass

    with torch.no_grad():
        read = Generator(pipe, samples, 2, 0, 1, Bar())(("rgb",), ("depth",))["depth"]
        pixels = pipe.generate({"rgb_pixels": cond}, [pipe.default_target("depth", steps=1)],
                               num_samples=2, seed=0, progress=False).values["depth"]  # fmt: skip
        pipe.image_inputs = "both"
        both = Generator(pipe, samples, 2, 0, 1, Bar())(("rgb",), ("depth",))["depth"]
    assert all(np.array_equal(a, b) for a, b in zip(read, pixels))
    assert any(not np.array_equal(a, b) for a, b in zip(both, pixels))


def test_label_f1_needs_the_named_attributes():
    caption = "A small red circle is to the left of a large blue square."
    box = [0.1, 0.1, 0.3, 0.3]
    assert label_f1([{"label": "small red circle", "box": box}, {"label": "large blue square", "box": box}],
                          caption) == 1.0
    assert label_f1([{"label": "circle", "box": box}, {"label": "square", "box": box}], caption) == 1.0
    # a wrong colour or size is a miss; one object matched once, however often it is named
    assert label_f1([{"label": "small blue circle", "box": box}], caption) == 0.0
    assert label_f1([{"label": "large red circle", "box": box}], caption) == 0.0
    assert label_f1([{"label": "red circle", "box": box}] * 2, caption) == pytest.approx(2 * 1 / 4)
    assert label_f1([], caption) == 0.0


def test_start_tasks_and_generation_settings(bench, tmp_path, capsys):
    bundle = build_toy_bundle(tmp_path / "bundle")
    out = tmp_path / "out"
    argv = ["--model", str(bundle), "--num", "2", "--start", "5", "--batch", "2", "--tasks", "caption_to_rgb",
            "--set", "rgb.guidance_scale=2.5", "--set", "rgb.steps=1", "--out", str(out), "--no-progress"]
    assert bench.main(argv) == 0
    results = json.loads((out / "eval_world.json").read_text())
    assert "caption_to_rgb" in results and "rgb_to_semseg" not in results
    assert results["config"]["start"] == 5
    assert results["config"]["generation"]["rgb"]["guidance_scale"] == 2.5
    assert results["config"]["generation"]["rgb"]["steps"] == 1
    for bad in (["--tasks", "rgb_to_nothing"], ["--set", "rgb.guidance_scale"], ["--start", "-1"]):
        assert bench.main(["--model", str(bundle), "--out", str(out), *bad]) == 2
        assert "error:" in capsys.readouterr().err


def test_semseg_chains_on_request(bench, tmp_path):
    bundle = build_toy_bundle(tmp_path / "bundle")
    out = tmp_path / "out"
    argv = ["--model", str(bundle), "--num", "2", "--batch", "2", "--steps", "1", "--out", str(out), "--no-progress",
            "--tasks", "caption_to_semseg_to_rgb,caption_to_bboxes_to_semseg_to_rgb"]  # fmt: skip
    assert bench.main(argv) == 0
    results = json.loads((out / "eval_world.json").read_text())
    assert "caption_to_rgb" not in results
    direct, chained = results["caption_to_semseg_to_rgb"], results["caption_to_bboxes_to_semseg_to_rgb"]
    assert set(direct) >= {"presence", "shape_acc", "score"} and "box_iou" not in direct
    assert set(chained) >= {"presence", "score", "box_iou", "bbox_label_f1", "parse_failures"}
    assert chained["parse_failures"] == 0.0


def test_box_relation_acc_checks_the_captions_planar_relations():
    import math

    from fourm.data.world import render_sample
    from fourm.eval.world import moved_boxes
    from fourm.eval.world_scores import box_relation_acc, mean_defined

    caption = "a small red circle to the left of a large blue square"
    left, right = [0.1, 0.4, 0.3, 0.6], [0.6, 0.3, 0.9, 0.7]
    good = [{"label": "small red circle", "box": left}, {"label": "large blue square", "box": right}]
    bad = [{"label": "small red circle", "box": right}, {"label": "large blue square", "box": left}]
    assert box_relation_acc(good, caption) == 1.0 and box_relation_acc(bad, caption) == 0.0
    assert box_relation_acc(good[:1], caption) == 0.0  # a missing endpoint fails
    assert math.isnan(box_relation_acc(good, "a small red circle"))  # nothing to check
    assert math.isnan(mean_defined([float("nan")])) and mean_defined([1.0, float("nan"), 0.0]) == 0.5
    # the world's own boxes keep every planar relation of its captions
    scenes = [render_sample(index=i, seed=5) for i in range(30)]
    assert mean_defined([box_relation_acc(s["bboxes"], s["caption"]) for s in scenes]) == 1.0
    moved = moved_boxes(good, [{"label": "x", "box": right}])
    assert [b["label"] for b in moved] == ["small red circle", "large blue square"] and moved[0]["box"] == right


def test_world_config_sets_how_the_val_scenes_are_made(bench, tmp_path, capsys):
    from fourm.data.raw_dataset import VAL_INDEX_OFFSET
    from fourm.data.world import WorldConfig, render_sample
    from fourm.eval.world import load_eval_pipeline, load_samples

    bundle = build_toy_bundle(tmp_path / "bundle")
    pipe = load_eval_pipeline(bundle)
    ltr = WorldConfig(caption_order="left_to_right")  # its size (64) gives way to the model's (32)
    made = load_samples(None, 6, "val", pipe, 0, ltr)
    default = load_samples(None, 6, "val", pipe)
    truth = [render_sample(VAL_INDEX_OFFSET + j, seed=1, config=WorldConfig(size=32, caption_order="left_to_right"))
             for j in range(6)]
    assert [s["caption"] for s in made] == [t["caption"] for t in truth]
    assert made[0]["rgb"].shape[:2] == (32, 32)
    assert any(a["caption"] != b["caption"] for a, b in zip(made, default))
    config = tmp_path / "world.yaml"
    config.write_text("caption_order: left_to_right\n")
    out = tmp_path / "out"
    argv = ["--model", str(bundle), "--num", "2", "--batch", "2", "--tasks", "rgb_to_caption",
            "--world-config", str(config), "--out", str(out), "--no-progress"]
    assert bench.main(argv) == 0
    assert json.loads((out / "eval_world.json").read_text())["config"]["world"]["caption_order"] == "left_to_right"
    assert bench.main([*argv, "--data", str(tmp_path)]) == 2
    assert "error: a world config sets how world val scenes are made" in capsys.readouterr().err


def test_box_detection_against_the_true_boxes():
    from fourm.eval.world_scores import box_detection, detection_scores

    circle = {"label": "small red circle", "box": [0.0, 0.0, 0.5, 0.5]}
    square = {"label": "large blue square", "box": [0.5, 0.5, 1.0, 1.0]}
    truth = [circle, square]
    assert box_detection(truth, truth) == {"count_acc": 1.0, "box_iou": 1.0, "label_f1": 1.0, "f1_50": 1.0}
    half = {"label": "small red circle", "box": [0.0, 0.0, 0.5, 0.25]}  # IoU 0.5 with the circle
    assert box_detection([half], truth) == pytest.approx(
        {"count_acc": 0.0, "box_iou": 0.25, "label_f1": 2 / 3, "f1_50": 2 / 3}
    )
    # a box on the circle with the wrong colour matches nothing; the square named twice matches once
    wrong = {"label": "small green circle", "box": circle["box"]}
    assert box_detection([wrong, square, square], truth) == pytest.approx(
        {"count_acc": 0.0, "box_iou": 0.5, "label_f1": 0.4, "f1_50": 0.4}
    )
    # labels fit but the boxes are swapped: found and named, not placed
    swapped = [{"label": circle["label"], "box": square["box"]}, {"label": square["label"], "box": circle["box"]}]
    assert box_detection(swapped, truth) == {"count_acc": 1.0, "box_iou": 0.0, "label_f1": 1.0, "f1_50": 0.0}
    assert box_detection([], truth)["label_f1"] == 0.0 and box_detection([], [])["box_iou"] == 1.0
    means = detection_scores([truth, []], [{"bboxes": truth}, {"bboxes": truth}])
    assert means["count_acc"] == 0.5 and means["box_iou"] == 0.5


def test_caption_margin_is_the_difference_of_two_likelihoods():
    import numpy as np
    import torch

    from fourm.eval.world import caption_margin
    from fourm.generation.rerank import log_likelihood
    from fourm.testing.bundles import toy_pipeline

    pipe = toy_pipeline(32, 0)
    images = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(2)]
    captions, others = ["a red circle", "a blue square"], ["a green star", "a red hexagon"]
    with torch.no_grad():
        margin = caption_margin(pipe, "rgb", images, captions, others, 0)
        scored = given(pipe, "rgb", images)
        lp = [log_likelihood(pipe.model, {"caption": given(pipe, "caption", t)}, "rgb", scored, 0) for t in (captions, others)]
        same = caption_margin(pipe, "rgb", images, captions, captions, 0)
    assert margin.shape == (2,) and margin.abs().sum() > 0  # the toy model reads its caption
    torch.testing.assert_close(margin, lp[0] - lp[1])
    assert torch.equal(same, torch.zeros(2))


def test_an_interrupted_eval_resumes_its_finished_tasks(bench, tmp_path, monkeypatch, capsys):
    """Killed right after its first task was kept, the same command generates only the second task
    and writes the same results as a run straight through; other settings are refused in one line."""
    import fourm.eval.world as world
    from fourm.testing.interrupt import kill_after_save

    bundle = build_toy_bundle(tmp_path / "bundle")
    args = ["--model", str(bundle), "--num", "2", "--batch", "2", "--steps", "1", "--tasks", "caption_to_rgb,rgb_to_depth",
            "--no-progress"]  # fmt: skip
    assert bench.main([*args, "--out", str(tmp_path / "straight")]) == 0
    out = tmp_path / "resumed"
    original = kill_after_save(monkeypatch, world, "save_task", lambda path, *_: path.name == "caption_to_rgb.pkl")
    assert bench.main([*args, "--out", str(out)]) == 130  # Ctrl-C: "interrupted"
    partial = tmp_path / "resumed.partial"
    assert (partial / "caption_to_rgb.pkl").is_file() and not out.exists()
    assert bench.main([*args, "--seed", "1", "--out", str(out)]) == 2  # another seed: refused, kept
    assert "holds an interrupted run with other settings or inputs (changed: seed" in capsys.readouterr().err
    monkeypatch.setattr(world, "save_task", original)
    calls = []
    monkeypatch.setattr(world.Generator, "__call__", lambda self, c, t, f=world.Generator.__call__: calls.append(t) or f(self, c, t))
    assert bench.main([*args, "--out", str(out)]) == 0
    assert calls == [("depth",)] and not partial.exists()

    def results(path):
        r = json.loads((path / "eval_world.json").read_text())
        r["config"].pop("seconds")
        r.pop("timings_s")
        return r

    assert results(out) == results(tmp_path / "straight")
