"""Semantic segmentation scores between predicted and true class maps.

Classes absent from both prediction and truth are ignored (no IoU is defined for them); a class
present in either counts, so a hallucinated class scores IoU 0.
"""

from __future__ import annotations

import numpy as np

from fourm.errors import FourmError


def confusion_matrix(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``C[t, p]`` of pixels with true class t and predicted class p.  # (K, K) int64

    ``pred`` and ``true`` are integer maps of any equal shape (e.g. (H, W) or a batch (B, H, W))."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise FourmError(f"segmentation maps differ in shape: predicted {pred.shape}, true {true.shape}")
    p, t = pred.astype(np.int64).ravel(), true.astype(np.int64).ravel()
    if p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= num_classes):
        raise FourmError(f"class ids must lie in 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion matrix; NaN where the class is absent from both.  # (K,)"""
    c = np.asarray(confusion, dtype=np.float64)
    inter = np.diag(c)
    union = c.sum(0) + c.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present in prediction or truth (NaN for an empty confusion)."""
    ious = iou_per_class(confusion)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Fraction of pixels whose predicted class is the true class."""
    c = np.asarray(confusion)
    total = c.sum()
    return float(np.trace(c) / total) if total else float("nan")


def foreground_split(confusion: np.ndarray, background: int) -> dict[str, float]:
    """Where a segmentation fails: ``fg_iou``, the IoU of "any class but ``background``" (finding
    the objects), and ``fg_class_acc``, the share of pixels foreground in both maps whose class is
    right (naming them). NaN where undefined (no foreground anywhere / no overlap)."""
    c = np.asarray(confusion, dtype=np.float64)
    if not 0 <= background < c.shape[0]:
        raise FourmError(f"background class {background} is not in 0..{c.shape[0] - 1}")
    fg = np.ones(c.shape[0], dtype=bool)
    fg[background] = False
    both = c[np.ix_(fg, fg)]  # true foreground predicted as some foreground class
    union = c.sum() - c[background, background]
    return {
        "fg_iou": float(both.sum() / union) if union else float("nan"),
        "fg_class_acc": float(np.trace(both) / both.sum()) if both.sum() else float("nan"),
    }


def segmentation_scores(
    pred: np.ndarray, true: np.ndarray, num_classes: int, background: int | None = None
) -> dict[str, float]:
    """``{"miou", "pixel_acc"}`` of ``pred`` vs ``true`` (pooled over all pixels given), with
    ``fg_iou`` and ``fg_class_acc`` (:func:`foreground_split`) when a ``background`` class is named."""
    c = confusion_matrix(pred, true, num_classes)
    scores = {"miou": mean_iou(c), "pixel_acc": pixel_accuracy(c)}
    return scores if background is None else {**scores, **foreground_split(c, background)}
