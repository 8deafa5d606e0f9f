"""The procedural world: alignment of all modalities, scene invariants, numerics, determinism, config."""

import math
import re

import numpy as np
import pytest

from fourm.core.schema import check_image
from fourm.data.world import CLASS_NAMES, COLORS, SHAPES, WorldConfig, render_sample
from fourm.data.world.captions import RELATION_MIN_OFFSET
from fourm.data.world.generate import sample_valid_scene
from fourm.data.world.palette import OBJECT_DEPTH_RANGE, SHAPE_GEOMETRY, depth_gap
from fourm.data.world.render import layer_depth, pixel_centers, render_scene, shape_sdf
from fourm.data.world.scene import Background, Scene, SceneObject, row_depths
from fourm.errors import FourmError

SEED = 3
NUM = 40


def _internals(index, seed=SEED, config=None):
    """(scene, layers, rendering) exactly as render_sample builds them."""
    config = config or WorldConfig()
    rng = np.random.default_rng([seed, index])
    scene, layers, _ = sample_valid_scene(rng, config)
    return scene, layers, render_scene(scene, config.size, layers)


@pytest.fixture(scope="module")
def worlds():
    out = []
    for i in range(NUM):
        sample = render_sample(i, seed=SEED)
        scene, layers, rendering = _internals(i)
        np.testing.assert_array_equal(rendering.rgb, sample["rgb"])  # the internals are the sample's
        out.append((sample, scene, layers, rendering))
    return out


def _decode_normals(normals):
    return normals.astype(np.float64) / 255.0 * 2.0 - 1.0


def _flat_scene(obj, gray=0.2):
    background = Background((gray,) * 3, (gray,) * 3, ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0)))
    return Scene((obj,), background)


def test_sample_layout(worlds):
    for sample, scene, _, _ in worlds:
        for key in ("rgb", "depth", "semseg", "normals", "edges"):
            check_image(key, sample[key], 64)
        assert sample["rgb"].dtype == np.uint8 and sample["depth"].dtype == np.float32
        assert 0.0 <= sample["depth"].min() and sample["depth"].max() <= 1.0
        assert set(np.unique(sample["edges"])) <= {0, 1}
        assert sample["semseg"].max() < len(CLASS_NAMES)
        assert len(sample["bboxes"]) == len(scene.objects) == sample["metadata"]["object_count"]
        assert 1 <= len(sample["color_palette"]) <= 5
        assert all(
            len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in sample["color_palette"]
        )
        assert {"brightness", "contrast", "dominant_color", "mean_depth", "occlusion"} <= set(
            sample["metadata"]
        )
        assert sample["metadata"]["dominant_color"] in COLORS
        assert sample["metadata"]["mean_depth"] == pytest.approx(float(sample["depth"].mean()), abs=1e-4)
    counts = {len(s.objects) for _, s, _, _ in worlds}
    assert counts == {1, 2, 3, 4}


def test_box_centre_pixel_shows_box_label(worlds):
    for sample, _, _, _ in worlds:
        for box in sample["bboxes"]:
            x0, y0, x1, y1 = box["box"]
            assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
            row, col = int((y0 + y1) / 2 * 64 + 1e-6), int((x0 + x1) / 2 * 64 + 1e-6)
            assert sample["semseg"][row, col] == CLASS_NAMES.index(box["label"].split()[-1])


def test_box_labels_name_objects_in_caption_order(worlds):
    """Labels are 'size colour shape' and come in the order the caption first names the objects."""
    for sample, scene, _, _ in worlds:
        described = {f"{o.size} {o.color} {o.shape}" for o in scene.objects}
        labels = [b["label"] for b in sample["bboxes"]]
        assert set(labels) == described and len(labels) == len(scene.objects)
        caption = sample["caption"].lower()
        firsts = [caption.find(f"{lab.split()[1]} {lab.split()[2]}") for lab in labels]
        assert all(f >= 0 for f in firsts) and firsts == sorted(firsts), (caption, labels)


def test_left_to_right_box_order_only_reorders_the_boxes():
    for index in range(40):
        by_caption = render_sample(index, seed=4)
        sorted_ = render_sample(index, seed=4, config=WorldConfig(box_order="left_to_right"))
        centres = [b["box"][0] + b["box"][2] for b in sorted_["bboxes"]]
        assert centres == sorted(centres)
        key = lambda b: (b["label"], tuple(b["box"]))  # noqa: E731
        assert sorted(map(key, sorted_["bboxes"])) == sorted(map(key, by_caption["bboxes"]))
        assert sorted_["caption"] == by_caption["caption"] and np.array_equal(sorted_["rgb"], by_caption["rgb"])
    with pytest.raises(FourmError, match="box_order.*expected caption or left_to_right"):
        WorldConfig(box_order="random")


def test_ground_depends_on_its_name_only():
    """Two scenes with the same ground show identical ground pixels wherever neither has an object."""
    a, b = render_sample(0, seed=3), render_sample(1, seed=3)
    near = np.pad((a["semseg"] > 0) | (b["semseg"] > 0), 2)  # objects and their anti-aliased rims
    near = np.any([np.roll(np.roll(near, dy, 0), dx, 1) for dy in range(-2, 3) for dx in range(-2, 3)], 0)
    ground = ~near[2:-2, 2:-2]
    assert ground.mean() > 0.3
    np.testing.assert_array_equal(a["rgb"][ground], b["rgb"][ground])
    several = WorldConfig(grounds=("stone", "sand"))
    tops = {tuple(render_sample(i, config=several)["rgb"][0, 0]) for i in range(20)}
    assert 2 <= len(tops) <= 4  # two grounds (an object may cover the corner)
    with pytest.raises(FourmError, match="unknown ground 'lava'"):
        WorldConfig(grounds=("lava",))


def test_boxes_are_tight_around_visible_pixels(worlds):
    for sample, scene, _, rendering in worlds:
        index = {f"{o.size} {o.color} {o.shape}": k for k, o in enumerate(scene.objects)}
        for box in sample["bboxes"]:
            rows, cols = np.nonzero(rendering.object_ids == index[box["label"]] + 1)
            expected = [cols.min() / 64, rows.min() / 64, (cols.max() + 1) / 64, (rows.max() + 1) / 64]
            np.testing.assert_allclose(box["box"], expected)


def test_every_object_keeps_half_its_area_visible(worlds):
    for _, _, layers, rendering in worlds:
        visible = np.bincount(rendering.object_ids.ravel(), minlength=len(layers) + 1)[1:]
        for k, layer in enumerate(layers):
            assert visible[k] >= 0.5 * layer.inside.sum() > 0
    assert any(s["metadata"]["occlusion"] for s, _, _, _ in worlds)  # occlusion does happen


def test_depth_order_matches_occlusion(worlds):
    overlaps = 0
    for sample, scene, layers, rendering in worlds:
        size = 64
        footprint = np.zeros((len(layers), size, size), dtype=bool)
        surface = np.full((len(layers), size, size), np.inf)
        for k, (obj, layer) in enumerate(zip(scene.objects, layers)):
            footprint[k][layer.rows, layer.cols] = layer.inside
            surface[k][layer.rows, layer.cols] = np.where(layer.inside, layer_depth(obj, layer), np.inf)
        for i in range(len(layers)):
            for j in range(i + 1, len(layers)):
                both = footprint[i] & footprint[j]
                if not both.any():
                    continue
                overlaps += 1
                shown = rendering.object_ids[both] - 1
                assert set(shown) <= {i, j}
                hidden = np.where(shown == i, j, i)
                pix = np.nonzero(both)
                assert np.all(surface[shown, pix[0], pix[1]] < surface[hidden, pix[0], pix[1]])
        # the depth map shows the visible surface; objects are in front of the ground
        obj_pixels = rendering.object_ids > 0
        k = rendering.object_ids[obj_pixels].astype(int) - 1
        rows, cols = np.nonzero(obj_pixels)
        np.testing.assert_allclose(sample["depth"][obj_pixels], surface[k, rows, cols], atol=1e-6)
        assert sample["depth"][obj_pixels].max(initial=0) < sample["depth"][~obj_pixels].min()
    assert overlaps > 0


def test_depth_follows_the_row_as_on_a_ground_plane(worlds):
    gap = depth_gap(WorldConfig().relief)
    lo, hi = OBJECT_DEPTH_RANGE
    for _, scene, _, _ in worlds:
        objs = scene.objects
        depths = np.array([o.depth for o in objs])
        rows = np.array([o.center[1] for o in objs])
        assert np.all(np.diff(depths) < 0)  # painter's order: farthest first
        assert np.all(np.diff(rows) >= 0)  # ... which is the highest in the image first
        assert np.all(-np.diff(depths) >= gap - 1e-12)
        assert lo <= depths.min() and depths.max() <= hi + 1e-12
        # the formula, from a reference written out: rank 0 = lowest object
        n = len(objs)
        for k, o in enumerate(objs):
            rank = n - 1 - k
            assert o.depth == pytest.approx(lo + gap * rank + (hi - lo - gap * (n - 1)) * (1 - o.center[1]))


def test_row_depths_lone_object_ties_and_range():
    gap = 0.1
    lo, hi = OBJECT_DEPTH_RANGE
    np.testing.assert_allclose(row_depths(np.array([0.2]), gap), [lo + (hi - lo) * 0.8])
    tied = row_depths(np.array([0.5, 0.5, 0.5]), gap)  # equal rows: the earlier index is nearer
    np.testing.assert_allclose(np.diff(tied), [gap, gap])
    extreme = row_depths(np.array([0.0, 1.0, 0.0, 1.0]), gap)
    assert extreme.min() >= lo - 1e-12 and extreme.max() <= hi + 1e-12


def test_caption_mentions_every_object(worlds):
    for sample, scene, _, _ in worlds:
        for obj in scene.objects:
            assert f"{obj.size} {obj.color} {obj.shape}" in sample["caption"], sample["caption"]


def test_caption_relations_are_true_and_phrasings_vary():
    config = WorldConfig(min_objects=2, max_objects=2)
    shapes = "|".join(SHAPES)
    relations = r"to the left of|to the right of|above|below|in front of|behind"
    skeletons = set()
    for i in range(60):
        sample = render_sample(i, config=config)
        scene, _, _ = _internals(i, seed=0, config=config)
        by_name = {f"{o.color} {o.shape}": o for o in scene.objects}
        caption = sample["caption"]
        found = re.findall(
            rf"(\w+ (?:{shapes})),? (?:which )?is ({relations}) (?:a \w+ )?(?:the )?(\w+ (?:{shapes}))",
            caption,
        )
        assert found, caption
        for a_name, rel, b_name in found:
            a, b = by_name[a_name], by_name[b_name]
            dx, dy = a.center[0] - b.center[0], a.center[1] - b.center[1]
            expected = {
                "to the left of": dx < -RELATION_MIN_OFFSET,
                "to the right of": dx > RELATION_MIN_OFFSET,
                "above": dy < -RELATION_MIN_OFFSET,
                "below": dy > RELATION_MIN_OFFSET,
                "in front of": a.depth < b.depth,
                "behind": a.depth > b.depth,
            }[rel]
            assert expected, (caption, a, b)
        skeleton = re.sub(rf"(small |large )?(\w+) ({shapes})", "<obj>", caption)
        skeletons.add(re.sub(relations, "<rel>", skeleton))
    assert len(skeletons) >= 4, skeletons


def test_palette_colours_occur_in_image_ordered_by_area(worlds):
    for sample, scene, _, rendering in worlds:
        pixels = {tuple(p) for p in sample["rgb"].reshape(-1, 3).tolist()}
        for color in sample["color_palette"]:
            assert tuple(color) in pixels
        areas = np.sort(np.bincount(rendering.object_ids.ravel()))[::-1]
        assert len(sample["color_palette"]) == min(5, int((areas > 0).sum()))
        # an object whose flat, camera-facing top is visible contributes its exact albedo
        largest = int(
            np.bincount(rendering.object_ids.ravel(), minlength=len(scene.objects) + 1)[1:].argmax()
        )
        top = (rendering.object_ids == largest + 1) & (rendering.shade == 1.0) & rendering.unblended
        if top.any():
            assert list(scene.objects[largest].albedo) in sample["color_palette"]


def test_edges_lie_on_class_or_depth_boundaries(worlds):
    for sample, _, _, _ in worlds:
        semseg, depth, edges = sample["semseg"].astype(int), sample["depth"], sample["edges"].astype(bool)
        pad_s = np.pad(semseg, 1, mode="edge")
        pad_d = np.pad(depth, 1, mode="edge")
        boundary = np.zeros_like(edges)
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            nb_s, nb_d = pad_s[dy : dy + 64, dx : dx + 64], pad_d[dy : dy + 64, dx : dx + 64]
            boundary |= (nb_s != semseg) | (np.abs(nb_d - depth) > 0.04)
        assert edges.any()
        assert not (edges & ~boundary).any()
        # conversely every class change between neighbours is marked on one side
        change = semseg[:, 1:] != semseg[:, :-1]
        assert np.all(edges[:, 1:][change] | edges[:, :-1][change])
        change = semseg[1:] != semseg[:-1]
        assert np.all(edges[1:][change] | edges[:-1][change])


def test_normals_are_unit_and_face_the_camera(worlds):
    for sample, _, _, _ in worlds:
        n = _decode_normals(sample["normals"])
        np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=0.015)
        assert n[..., 2].min() > 0
        assert np.unique(sample["normals"].reshape(-1, 3), axis=0).shape[0] > 10  # relief makes them vary


def test_normals_match_depth_gradient_and_relief():
    size = 64
    obj = SceneObject("circle", "red", (220, 40, 40), "large", 0.3, (0.5, 0.5), 0.0, 0.4, 0.08)
    r = render_scene(_flat_scene(obj), size)
    depth = r.depth.astype(np.float64)
    assert depth[32, 32] == pytest.approx(obj.depth - obj.relief, abs=1e-6)  # flat top: base - relief
    # central differences of depth, in depth units per image side, give normal ~ (dz/dx, dz/dy, 1)
    dzdx = (depth[1:-1, 2:] - depth[1:-1, :-2]) * size / 2
    dzdy = (depth[2:, 1:-1] - depth[:-2, 1:-1]) * size / 2
    ref = np.stack([dzdx, dzdy, np.ones_like(dzdx)], -1)
    ref /= np.linalg.norm(ref, axis=-1, keepdims=True)
    ids = r.object_ids
    interior = np.ones_like(ids[1:-1, 1:-1], dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            interior &= ids[1 + dy : 63 + dy, 1 + dx : 63 + dx] == 1
    err = np.linalg.norm(_decode_normals(r.normals)[1:-1, 1:-1][interior] - ref[interior], axis=-1)
    assert np.quantile(err, 0.9) < 0.05 and err.max() < 0.3
    n = _decode_normals(r.normals)
    assert n[32, 32] == pytest.approx([0, 0, 1], abs=0.01)
    assert n[32, 50, 0] > 0.3 and n[32, 13, 0] < -0.3 and n[13, 32, 1] < -0.3  # rim faces outwards
    assert np.all(np.diff(depth[:, 0]) < 0)  # ground: farther towards the top


def test_rgb_is_antialiased_with_exact_coverage_while_semseg_is_hard():
    size = 64
    obj = SceneObject("circle", "red", (220, 40, 40), "large", 0.3, (0.5, 0.5), 0.0, 0.4, 0.0)  # flat
    r = render_scene(_flat_scene(obj, gray=0.2), size)
    bg = round(0.2 * 255)
    alpha = (r.rgb[..., 0].astype(np.float64) - bg) / (220 - bg)
    analytic_area = math.pi * (0.3 * size) ** 2
    assert alpha.sum() == pytest.approx(analytic_area, rel=0.003)
    partial = (alpha > 0.05) & (alpha < 0.95)
    assert partial.sum() > 50  # a soft rim in rgb ...
    assert set(np.unique(r.semseg)) == {0, CLASS_NAMES.index("circle")}  # ... a hard one in semseg
    assert (r.semseg > 0).sum() == pytest.approx(analytic_area, rel=0.01)


@pytest.mark.parametrize("shape", sorted(SHAPE_GEOMETRY))
def test_shape_sdf_matches_polygon_reference(shape):
    obj = SceneObject(shape, "red", (220, 40, 40), "large", 0.3, (0.45, 0.55), 0.7, 0.4, 0.05)
    xs = ys = pixel_centers(48)
    sdf = shape_sdf(obj, xs, ys)
    points, inner, _ = SHAPE_GEOMETRY[shape]
    angles = np.arange(2 * points) * math.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, obj.radius, obj.radius * inner)
    local = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    c, s = math.cos(obj.rotation), math.sin(obj.rotation)
    verts = np.array(obj.center) + local @ np.array([[c, s], [-s, c]])  # rotate by +rotation
    px, py = np.meshgrid(xs, ys)
    p = np.stack([px, py], -1)[:, :, None, :]  # (H, W, 1, 2)
    a, b = verts, np.roll(verts, -1, axis=0)
    t = np.clip(((p - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1), 0, 1)
    dist = np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1).min(-1)
    crosses = ((a[:, 1] > py[..., None]) != (b[:, 1] > py[..., None])) & (
        px[..., None]
        < a[:, 0] + (py[..., None] - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1] + 1e-300)
    )
    inside = crosses.sum(-1) % 2 == 1
    np.testing.assert_allclose(sdf, np.where(inside, -dist, dist), atol=1e-9)


def test_deterministic_by_seed_and_index():
    a, b = render_sample(7, seed=1), render_sample(7, seed=1)
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key]
    assert not np.array_equal(a["rgb"], render_sample(7, seed=2)["rgb"])
    assert not np.array_equal(a["rgb"], render_sample(8, seed=1)["rgb"])
    assert a["id"] != render_sample(7, seed=2)["id"]


def test_other_image_sizes_and_vocabulary_subsets():
    config = WorldConfig(size=32, shapes=("triangle", "star"), colors=("red", "blue"), max_objects=3)
    for i in range(10):
        sample = render_sample(i, config=config)
        check_image("rgb", sample["rgb"], 32)
        assert {b["label"].split()[-1] for b in sample["bboxes"]} <= {"triangle", "star"}
        assert set(np.unique(sample["semseg"])) <= {
            0,
            CLASS_NAMES.index("triangle"),
            CLASS_NAMES.index("star"),
        }


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"size": 8}, "size"),
        ({"max_objects": 0}, "max_objects"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"shapes": ["blob"]}, "unknown shape 'blob'"),
        ({"colors": []}, "colors"),
        ({"colors": ["red", "red"]}, "duplicates"),
        ({"relief": 0.9}, "relief"),
        ({"max_objects": 5, "relief": 0.5}, "too high"),
        ({"shapes": ["circle"], "colors": ["red"], "max_objects": 2}, "pairs"),
        ({"size": "big"}, "size"),
        ({"bogus": 1}, "unknown config field 'bogus'"),
    ],
)
def test_invalid_config_raises(changes, match):
    with pytest.raises(FourmError, match=match):
        WorldConfig.from_dict(changes)


def test_invalid_config_raises_when_constructed_directly_and_bad_index():
    with pytest.raises(FourmError, match="size"):
        WorldConfig(size=4)
    with pytest.raises(FourmError, match="index"):
        render_sample(-1)


def test_paraphrases_describe_the_same_scene_in_other_words(worlds):
    from fourm.data.world import paraphrases, sample_index
    from fourm.eval.captions import caption_accuracy, parse_caption

    changed = 0
    for i, (sample, scene, _, _) in enumerate(worlds[:12]):
        seed, index = sample_index(sample["id"])
        assert (seed, index) == (SEED, i)
        others = paraphrases(index, seed=seed, num=3)
        assert others == paraphrases(index, seed=seed, num=3)  # deterministic
        assert len(set(others)) > 1 or len(scene.objects) == 1
        changed += sum(p != sample["caption"] for p in others)
        true = {(o.color, o.shape): o.size for o in scene.objects}
        for text in others:
            assert parse_caption(text).objects == true, text
            assert caption_accuracy(text, sample["caption"])["exact"] == 1.0
    assert changed >= 24  # most of the 36 are worded differently from the sample's own caption
    with pytest.raises(FourmError, match="'rgb-3' is not a world sample id"):
        sample_index("rgb-3")
    with pytest.raises(FourmError, match="num >= 1"):
        paraphrases(0, num=0)


def test_left_to_right_caption_order_names_objects_by_centre_and_changes_nothing_else():
    changed = 0
    for index in range(40):
        rng = np.random.default_rng([4, index])
        scene, _, _ = sample_valid_scene(rng, WorldConfig())
        random_ = render_sample(index, seed=4)
        sorted_ = render_sample(index, seed=4, config=WorldConfig(caption_order="left_to_right"))
        by_x = sorted(scene.objects, key=lambda o: o.center)
        caption = sorted_["caption"].lower()
        firsts = [caption.find(f"{o.color} {o.shape}") for o in by_x]
        assert all(f >= 0 for f in firsts) and firsts == sorted(firsts), (caption, by_x)
        # boxes follow the caption's order (box_order "caption"), so they are sorted too
        assert [b["label"] for b in sorted_["bboxes"]] == [f"{o.size} {o.color} {o.shape}" for o in by_x]
        for key in ("rgb", "depth", "semseg", "edges"):
            assert np.array_equal(sorted_[key], random_[key])
        assert sorted_["metadata"] == random_["metadata"]
        if len(scene.objects) == 1:
            assert sorted_["caption"] == random_["caption"]
        changed += sorted_["caption"] != random_["caption"]
    assert changed > 10  # random orders differ from left to right in most multi-object scenes
    with pytest.raises(FourmError, match="caption_order.*expected random, left_to_right, mixed"):
        WorldConfig(caption_order="sorted")


def test_mixed_caption_order_is_either_order_per_scene_and_deterministic():
    mixed, ltr = WorldConfig(caption_order="mixed"), WorldConfig(caption_order="left_to_right")
    sorted_only = random_only = 0
    for index in range(60):
        m, r, s = (render_sample(index, seed=5, config=c) for c in (mixed, None, ltr))
        assert m["caption"] in (r["caption"], s["caption"])
        assert np.array_equal(m["rgb"], r["rgb"]) and m["metadata"] == r["metadata"]
        sorted_only += m["caption"] == s["caption"] != r["caption"]
        random_only += m["caption"] == r["caption"] != s["caption"]
        assert render_sample(index, seed=5, config=mixed)["caption"] == m["caption"]
    assert sorted_only >= 10 and random_only >= 10  # about half each among scenes where the orders differ
