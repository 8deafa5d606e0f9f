"""Connected components vs a flood fill, colour labels on shaded palette colours, hull areas, box
IoU and the best assignment vs an exhaustive reference."""

import itertools

import numpy as np
import pytest

from fourm.data.world.palette import COLORS
from fourm.errors import FourmError
from fourm.eval.blobs import COLOR_NAMES, color_labels, connected_components, find_blobs
from fourm.eval.boxes import best_assignment, box_iou
from fourm.eval.shape_classifier import convex_hull_area


def flood_fill(mask):
    labels, n = np.zeros(mask.shape, int), 0
    for start in zip(*np.nonzero(mask)):
        if labels[start]:
            continue
        n += 1
        stack = [start]
        labels[start] = n
        while stack:
            y, x = stack.pop()
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if (
                    0 <= ny < mask.shape[0]
                    and 0 <= nx < mask.shape[1]
                    and mask[ny, nx]
                    and not labels[ny, nx]
                ):
                    labels[ny, nx] = n
                    stack.append((ny, nx))
    return labels, n


@pytest.mark.parametrize("seed", range(6))
def test_components_match_flood_fill(seed):
    mask = np.random.default_rng(seed).random((20, 23)) < 0.55
    got, n = connected_components(mask)
    want, m = flood_fill(mask)
    assert n == m
    pairs = set(zip(got[mask].tolist(), want[mask].tolist()))  # a bijection between label sets
    assert len(pairs) == n and len({a for a, _ in pairs}) == n and len({b for _, b in pairs}) == n
    assert (got[~mask] == 0).all()


def test_color_labels_under_shading_and_ground():
    shades = np.array([0.45, 0.7, 1.0, 1.15])
    img = np.array([[np.clip(np.array(c) * s, 0, 255) for s in shades] for c in COLORS.values()])
    labels = color_labels(img.round().astype(np.uint8))
    assert (labels == np.arange(1, len(COLORS) + 1)[:, None]).all()
    ground = np.array([[[150, 140, 130], [90, 100, 95], [200, 200, 200], [10, 0, 0]]], dtype=np.uint8)
    assert (color_labels(ground) == 0).all()
    with pytest.raises(FourmError):
        color_labels(np.zeros((4, 4)))


def test_find_blobs_geometry():
    img = np.full((32, 32, 3), 120, np.uint8)
    img[4:10, 2:8] = COLORS["red"]
    img[20:30, 20:24] = COLORS["blue"]
    img[0, 31] = COLORS["green"]  # below the minimum blob size
    blobs = find_blobs(img)
    assert [b.color for b in blobs] == ["blue", "red"]
    assert blobs[1].box == (2 / 32, 4 / 32, 8 / 32, 10 / 32) and blobs[1].area == 36
    assert blobs[0].centroid == pytest.approx((22 / 32, 25 / 32))
    assert COLOR_NAMES[0] == "red"


def test_hull_area_and_box_iou():
    assert convex_hull_area(np.array([[0, 0], [4, 0], [4, 3], [0, 3], [2, 1]])) == pytest.approx(12)
    assert convex_hull_area(np.array([[0, 0], [1, 0], [0, 1]])) == pytest.approx(0.5)
    assert convex_hull_area(np.array([[0, 0], [1, 1], [2, 2]])) == pytest.approx(0)
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0 and box_iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0


def reference_assignment(score):
    """Exhaustive over all partial matchings: max (#pairs, total)."""
    r, c = score.shape
    best = (0, 0.0)
    for k in range(min(r, c) + 1):
        for rows in itertools.combinations(range(r), k):
            for cols in itertools.permutations(range(c), k):
                vals = [score[i, j] for i, j in zip(rows, cols)]
                if all(np.isfinite(vals)):
                    best = max(best, (k, float(sum(vals))))
    return best


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (4, 2), (3, 5)])
def test_assignment_is_optimal(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        score = rng.normal(size=shape)
        score[rng.random(shape) < 0.3] = -np.inf
        pairs = best_assignment(score)
        assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
        got = (len(pairs), sum(score[i, j] for i, j in pairs))
        want = reference_assignment(score)
        assert got[0] == want[0] and got[1] == pytest.approx(want[1])
