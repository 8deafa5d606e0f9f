"""mIoU / pixel accuracy vs a naive per-class loop; ignored absent classes; bad input."""

import numpy as np
import pytest

from fourm.errors import FourmError
from fourm.eval.segmentation import confusion_matrix, iou_per_class, segmentation_scores


def naive_scores(pred, true, num_classes):
    ious = []
    for c in range(num_classes):
        p, t = pred == c, true == c
        union = np.logical_or(p, t).sum()
        if union == 0:
            continue  # absent from both: ignored
        ious.append(np.logical_and(p, t).sum() / union)
    return float(np.mean(ious)), float((pred == true).mean())


@pytest.mark.parametrize("seed", range(5))
def test_matches_naive_loop(seed):
    rng = np.random.default_rng(seed)
    k = 7
    true = rng.integers(0, k - 2, size=(3, 16, 16))  # classes 5, 6 never true ...
    pred = np.where(rng.random(true.shape) < 0.6, true, rng.integers(0, k - 1, size=true.shape))  # 6 never
    got = segmentation_scores(pred, true, k)
    miou, acc = naive_scores(pred, true, k)
    assert got["miou"] == pytest.approx(miou)
    assert got["pixel_acc"] == pytest.approx(acc)
    ious = iou_per_class(confusion_matrix(pred, true, k))
    assert np.isnan(ious[6]) and not np.isnan(ious[5])  # hallucinated class 5 counts (IoU 0)
    assert ious[5] == 0.0


def test_perfect_and_disjoint():
    true = np.array([[0, 1], [2, 2]])
    assert segmentation_scores(true, true, 4) == {"miou": 1.0, "pixel_acc": 1.0}
    scores = segmentation_scores((true + 1) % 3, true, 4)
    assert scores["miou"] == 0.0 and scores["pixel_acc"] == 0.0


def test_confusion_counts():
    c = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert c.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]  # rows: true, cols: predicted


def test_bad_input():
    with pytest.raises(FourmError, match="shape"):
        segmentation_scores(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)
    with pytest.raises(FourmError, match="class ids"):
        segmentation_scores(np.full((2, 2), 3), np.zeros((2, 2), int), 3)


def test_mean_scores_ignores_nan():
    from fourm.eval.aggregate import mean_scores

    got = mean_scores([{"a": 1.0, "b": float("nan")}, {"a": 0.0, "b": float("nan")}, {"a": 0.5, "b": 2.0}])
    assert got["a"] == pytest.approx(0.5) and got["b"] == 2.0
    assert np.isnan(mean_scores([{"c": float("nan")}])["c"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_foreground_split_matches_masks(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 4, (3, 9, 9)) * (rng.random((3, 9, 9)) < 0.4)  # mostly background (class 0)
    pred = np.where(rng.random(true.shape) < 0.7, true, rng.integers(0, 4, true.shape))
    scores = segmentation_scores(pred, true, 4, background=0)
    pf, tf = pred > 0, true > 0
    assert scores["fg_iou"] == pytest.approx((pf & tf).sum() / (pf | tf).sum())
    both = pf & tf
    assert scores["fg_class_acc"] == pytest.approx((pred[both] == true[both]).mean())
    assert "fg_iou" not in segmentation_scores(pred, true, 4)  # only when a background class is named


def test_foreground_split_separates_finding_from_naming():
    true = np.array([[0, 1, 1, 0], [0, 2, 2, 0]])
    wrong_class = np.array([[0, 2, 2, 0], [0, 1, 1, 0]])  # every object found, every shape wrong
    scores = segmentation_scores(wrong_class, true, 3, background=0)
    assert (scores["fg_iou"], scores["fg_class_acc"]) == (1.0, 0.0)
    nothing = segmentation_scores(np.zeros_like(true), true, 3, background=0)
    assert nothing["fg_iou"] == 0.0 and np.isnan(nothing["fg_class_acc"])
    with pytest.raises(FourmError, match="background class 5"):
        segmentation_scores(true, true, 3, background=5)
