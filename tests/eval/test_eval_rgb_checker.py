"""The rgb checker on real world renders: ground truth scores high; colour-swapped, shape-swapped,
mirrored and other scenes' images score low; the calibrated shape classifier on held-out scenes."""

import dataclasses

import numpy as np
import pytest

from fourm.data.world import COLORS, WorldConfig, render_sample
from fourm.data.world.captions import make_caption
from fourm.data.world.generate import overlapping_pairs, sample_valid_scene
from fourm.data.world.palette import SHAPE_GEOMETRY
from fourm.data.world.render import render_scene
from fourm.data.world.scene import Scene
from fourm.errors import FourmError
from fourm.eval.aggregate import mean_scores as mean_of
from fourm.eval.rgb_checker import check_rgb
from fourm.eval.shape_classifier import default_classifier, labelled_world_blobs

NUM = 60
VAL = 1_000_000_000  # world index of the first val sample (seed 1), as in the raw datasets


def mean_scores(checks):
    return mean_of(c.scores() for c in checks)


def scenes(num=NUM, seed=1):
    config = WorldConfig()
    out = []
    for i in range(num):
        rng = np.random.default_rng([seed, VAL + i])
        scene, layers, _ = sample_valid_scene(rng, config)
        out.append((scene, make_caption(scene, rng, overlapping_pairs(layers, config.size))))
    return out


@pytest.fixture(scope="module")
def ground_truth():
    samples = [render_sample(VAL + i, seed=1) for i in range(NUM)]
    checks = [check_rgb(s["rgb"], s["caption"], s["bboxes"], depth=s["depth"]) for s in samples]
    return samples, checks


def test_ground_truth_scores_high(ground_truth):
    _, checks = ground_truth
    s = mean_scores(checks)
    assert s["presence"] >= 0.95 and s["shape_acc"] >= 0.9 and s["size_acc"] >= 0.95
    assert s["relation_acc"] >= 0.9 and s["box_iou"] >= 0.85 and s["extra_objects"] <= 0.1
    assert s["score"] >= 0.93
    # without depth, in-front/behind relations are unverifiable (None), the rest still hold
    plain = [check_rgb(smp["rgb"], smp["caption"]) for smp in ground_truth[0][:20]]
    assert any(r.ok is None for c in plain for r in c.relations)
    assert mean_scores(plain)["relation_acc"] >= 0.85


def test_other_scenes_image_scores_low(ground_truth):
    samples, _ = ground_truth
    checks = [
        check_rgb(samples[(i + 1) % NUM]["rgb"], s["caption"], s["bboxes"]) for i, s in enumerate(samples)
    ]
    s = mean_scores(checks)
    assert s["score"] <= 0.3 and s["box_iou"] <= 0.15 and s["object_acc"] <= 0.15


def test_color_swapped_scenes_score_low():
    checks = []
    for scene, caption in scenes(30):
        unused = [c for c in COLORS if c not in {o.color for o in scene.objects}]  # >= 4 of 8 colours
        objs = tuple(dataclasses.replace(o, color=c, albedo=COLORS[c]) for o, c in zip(scene.objects, unused))
        checks.append(check_rgb(render_scene(Scene(objs, scene.background), 64).rgb, caption))
    s = mean_scores(checks)
    assert s["presence"] <= 0.05 and s["score"] <= 0.1 and s["extra_objects"] >= 1.0


def test_shape_swapped_scenes_fail_shape():
    cycle = {
        "circle": "triangle",
        "triangle": "square",
        "square": "star",
        "star": "circle",
        "hexagon": "star",
    }
    checks, truth = [], []
    for scene, caption in scenes(30):
        objs = []
        for o in scene.objects:
            scale = (
                SHAPE_GEOMETRY.get(cycle[o.shape], (0, 0, 1.0))[2]
                / SHAPE_GEOMETRY.get(o.shape, (0, 0, 1.0))[2]
            )
            objs.append(dataclasses.replace(o, shape=cycle[o.shape], radius=o.radius * scale))
        checks.append(check_rgb(render_scene(Scene(tuple(objs), scene.background), 64).rgb, caption))
        truth.append(check_rgb(render_scene(scene, 64).rgb, caption))
    assert mean_scores(checks)["shape_acc"] <= 0.15
    assert mean_scores(truth)["shape_acc"] >= 0.9


def test_mirrored_images_fail_left_right(ground_truth):
    samples, _ = ground_truth
    hits = []
    for s in samples:
        check = check_rgb(s["rgb"][:, ::-1], s["caption"])
        hits += [
            r.ok for r in check.relations if ("left" in r.text or "right" in r.text) and r.ok is not None
        ]
    assert len(hits) >= 10 and np.mean(hits) <= 0.15


def test_shape_classifier_held_out_accuracy():
    blobs, labels = labelled_world_blobs(150, seed=1)
    shapes, sizes, proba = default_classifier().predict([b.mask for b in blobs])
    assert np.allclose(proba.sum(1), 1.0)
    assert np.mean([p == t for p, (t, _) in zip(shapes, labels)]) >= 0.9
    assert np.mean([p == t for p, (_, t) in zip(sizes, labels)]) >= 0.95


def test_bad_input():
    with pytest.raises(FourmError, match="shape"):
        check_rgb(np.zeros((8, 8)), "a red circle")
    with pytest.raises(FourmError, match="depth"):
        check_rgb(np.zeros((8, 8, 3), np.uint8), "a red circle", depth=np.zeros((4, 4)))


def test_box_scores_follow_the_boxes(ground_truth):
    samples, checks = ground_truth
    assert mean_scores(checks)["box_iou_any"] >= 0.85
    relabelled, shifted = [], []
    for s in samples[:30]:
        wrong = [  # the shape word replaced: a label must name its object's shape
            {"label": " ".join([*b["label"].split()[:-1], "circle" if b["label"].endswith("star") else "star"]),
             "box": b["box"]}
            for b in s["bboxes"]
        ]
        relabelled.append(check_rgb(s["rgb"], s["caption"], wrong))
        x0, y0, x1, y1 = zip(*(b["box"] for b in s["bboxes"]))
        reflected = zip(*(1 - np.array(v) for v in (x1, y1, x0, y0)))  # through the image centre
        moved = [{"label": b["label"], "box": list(box)} for b, box in zip(s["bboxes"], reflected)]
        shifted.append(check_rgb(s["rgb"], s["caption"], moved))
    r, m = mean_scores(relabelled), mean_scores(shifted)
    assert (
        r["box_iou"] <= 0.05 and r["box_iou_any"] >= 0.85
    )  # layout right, labels wrong (stars may meet stars)
    assert m["box_iou"] <= 0.15 and m["box_iou_any"] <= 0.2
    recoloured = [  # a named colour must agree too; shape-only labels still match on shape
        check_rgb(s["rgb"], s["caption"], [
            {"label": f"{'blue' if ' red ' in b['label'] else 'red'} {b['label'].split()[-1]}", "box": b["box"]}
            for b in s["bboxes"]
        ])
        for s in samples[:30]
    ]
    shape_only = [
        check_rgb(s["rgb"], s["caption"], [{"label": b["label"].split()[-1], "box": b["box"]} for b in s["bboxes"]])
        for s in samples[:30]
    ]
    assert mean_scores(shape_only)["box_iou"] >= 0.8 and mean_scores(recoloured)["box_iou"] <= 0.15
