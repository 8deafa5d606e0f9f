"""Caption parsing recovers every world scene's objects and true relations; attribute accuracy."""

import math

import numpy as np
import pytest

from fourm.data.world import WorldConfig
from fourm.data.world.captions import make_caption, position_phrase
from fourm.data.world.generate import overlapping_pairs, sample_valid_scene
from fourm.eval.captions import INVERSE, RELATIONS, caption_accuracy, parse_caption

NUM = 120


def world_scenes(num, seed=11):
    """(scene, caption) exactly as render_sample makes them."""
    config = WorldConfig()
    for i in range(num):
        rng = np.random.default_rng([seed, i])
        scene, layers, _ = sample_valid_scene(rng, config)
        yield scene, make_caption(scene, rng, overlapping_pairs(layers, config.size))


def relation_holds(a, rel, b):
    dx, dy = a.center[0] - b.center[0], a.center[1] - b.center[1]
    return {
        "to the left of": dx < 0,
        "to the right of": dx > 0,
        "above": dy < 0,
        "below": dy > 0,
        "in front of": a.depth < b.depth,
        "behind": a.depth > b.depth,
    }[rel]


def test_parse_recovers_world_captions():
    seen_relations = set()
    for scene, caption in world_scenes(NUM):
        parsed = parse_caption(caption)
        truth = {(o.color, o.shape): o.size for o in scene.objects}
        assert parsed.objects == truth, caption
        assert parsed.count == len(scene.objects)
        assert len(parsed.relations) == len(scene.objects) - 1, caption
        by_key = {(o.color, o.shape): o for o in scene.objects}
        for r in parsed.relations:
            assert relation_holds(by_key[r.subject], r.relation, by_key[r.object]), (caption, r)
            seen_relations.add(r.relation)
        if len(scene.objects) == 1:
            want = position_phrase(scene.objects[0])
            v, h = parsed.position
            assert (v in want) and (h in want), (caption, parsed.position)
    assert seen_relations == set(RELATIONS)


def test_chain_template_and_inverses():
    text = "A small red star is in front of a large green circle, which is below a small red hexagon."
    p = parse_caption(text)
    assert p.objects == {("red", "star"): "small", ("green", "circle"): "large", ("red", "hexagon"): "small"}
    assert [(r.subject, r.relation, r.object) for r in p.relations] == [
        (("red", "star"), "in front of", ("green", "circle")),
        (("green", "circle"), "below", ("red", "hexagon")),
    ]
    assert all(INVERSE[INVERSE[r]] == r for r in RELATIONS)
    assert parse_caption("There are three shapes: a red circle.").count == 3
    assert parse_caption("garbage words").objects == {}


def test_accuracy_perfect_missing_and_wrong():
    true = "A small red circle, a large blue square and a small green star. The red circle is above the blue square."
    perfect = caption_accuracy(true, true)
    assert all(v == 1.0 for v in perfect.values())
    missing = caption_accuracy("A small red circle is above a large blue square.", true)
    assert missing["pair_recall"] == pytest.approx(2 / 3) and missing["pair_precision"] == 1.0
    assert missing["count_acc"] == 0.0 and missing["exact"] == 0.0
    assert missing["pair_f1"] == pytest.approx(2 * (2 / 3) / (1 + 2 / 3))
    wrong = caption_accuracy("A large red square, a large blue square and a small green star.", true)
    assert wrong["pair_precision"] == pytest.approx(2 / 3)
    assert wrong["color_precision"] == 1.0 and wrong["shape_recall"] == pytest.approx(2 / 3)
    assert wrong["size_acc"] == 1.0  # blue square and green star sized right
    assert wrong["count_acc"] == 1.0
    sizes = caption_accuracy("A large red circle, a large blue square and a large green star.", true)
    assert sizes["size_acc"] == pytest.approx(1 / 3)
    # a stated count right while one object is named twice: right by count_acc, not by listed_count_acc
    twice = caption_accuracy("There are three shapes: a small red circle, a large blue square and a large blue square.", true)
    assert (twice["count_acc"], twice["listed_count_acc"]) == (1.0, 0.0)
    assert (missing["listed_count_acc"], wrong["listed_count_acc"]) == (0.0, 1.0)
    empty = caption_accuracy("", true)
    assert empty["pair_recall"] == 0.0 and empty["pair_f1"] == 0.0 and math.isnan(empty["size_acc"])
