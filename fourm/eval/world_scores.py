"""Scores of the world evaluation (:mod:`fourm.eval.world`): per-task metric dicts of generated values
against ground-truth samples (``{"rgb", "depth", "semseg", "caption", "bboxes"}`` per sample)."""

from __future__ import annotations

import math

import numpy as np

from fourm.data.world.palette import CLASS_NAMES
from fourm.eval.aggregate import mean_scores
from fourm.eval.boxes import best_assignment, box_iou, label_matches, label_words
from fourm.eval.captions import caption_accuracy, parse_caption
from fourm.eval.depth import depth_errors
from fourm.eval.rgb_checker import check_rgb
from fourm.eval.segmentation import segmentation_scores

WORLD_BACKGROUND = CLASS_NAMES.index("background")  # the ground's semseg class

CHECKER_KEYS = ("presence", "shape_acc", "size_acc", "object_acc", "relation_acc", "extra_objects", "score")
BOX_KEYS = ("box_iou", "box_recall50", "box_iou_any")


def semseg_scores(preds: list, samples: list[dict], num_classes: int) -> dict[str, float]:
    """mIoU, pixel accuracy and the foreground split (objects found / shapes named right; world class
    0 is the ground) of predicted class maps against the samples' semseg."""
    truth = np.stack([s["semseg"] for s in samples])
    return segmentation_scores(np.stack(preds), truth, num_classes, background=WORLD_BACKGROUND)


def depth_scores(preds: list, samples: list[dict]) -> dict[str, float]:
    """MAE, RMSE, abs-rel and delta < 1.25 of predicted depth maps against the samples' depth."""
    scores = depth_errors(np.stack(preds), np.stack([s["depth"] for s in samples]))
    return {k: scores[k] for k in ("mae", "rmse", "abs_rel", "delta1")}


def checker_scores(
    images: list, captions: list[str], boxes: list | None = None, depths: list | None = None
) -> dict:
    """Mean rgb-checker scores of images against their captions (and boxes / depth when given)."""
    checks = [
        check_rgb(img, cap, boxes[i] if boxes else None, depths[i] if depths else None)
        for i, (img, cap) in enumerate(zip(images, captions))
    ]
    scores = mean_scores(c.scores() for c in checks)
    keep = CHECKER_KEYS + (BOX_KEYS if boxes else ())
    return {k: scores[k] for k in keep}


def caption_scores(preds: list[str], samples: list[dict]) -> dict[str, float]:
    """Mean attribute accuracy of predicted captions against the samples' true captions."""
    return mean_scores(caption_accuracy(p, s["caption"]) for p, s in zip(preds, samples))


def relations_on_truth(captions: list[str], samples: list[dict]) -> float:
    """Mean fraction of a caption's relations that hold on the ground-truth image and depth."""
    scores = [
        check_rgb(s["rgb"], c, depth=s["depth"]).scores()["relation_acc"] for c, s in zip(captions, samples)
    ]
    return mean_scores({"r": v} for v in scores)["r"]


def label_f1(boxes: list[dict], caption: str) -> float:
    """F1 between the box labels and the caption's objects, one-to-one: a label fits an object when it
    names its shape and every size / colour it names agrees (shape-only labels compare on shape)."""
    want = [(size, color, shape) for (color, shape), size in parse_caption(caption).objects.items()]
    got = [str(b.get("label", "")) for b in boxes]
    fits = np.array([[0.0 if label_matches(g, *w) else -np.inf for w in want] for g in got]).reshape(len(got), len(want))
    tp = len(best_assignment(fits))
    return 2 * tp / (len(got) + len(want)) if got or want else 1.0


def box_detection(boxes: list[dict], truth: list[dict], iou_threshold: float = 0.5) -> dict[str, float]:
    """One image's boxes against its true boxes: ``count_acc`` (as many boxes as objects), ``box_iou``
    (the true boxes matched one-to-one to boxes whose label fits them, by largest summed IoU; mean IoU per
    true box, 0 where unmatched), ``label_f1`` (labels matched one-to-one, positions ignored) and ``f1_50``
    (matches with a fitting label and IoU >= ``iou_threshold``, as detection benchmarks count them)."""
    want = [(label_words(t["label"]), [float(v) for v in t["box"]]) for t in truth]
    got = [(str(b.get("label", "")), [float(v) for v in b["box"]]) for b in boxes]
    iou = np.array([[box_iou(gb, wb) for _, wb in want] for _, gb in got]).reshape(len(got), len(want))
    fit = np.array([[label_matches(g, size, color, shape) for (size, color, shape), _ in want] for g, _ in got])
    fit = fit.reshape(len(got), len(want)).astype(bool)
    matched = best_assignment(np.where(fit, iou, -np.inf))
    hits = len(best_assignment(np.where(fit & (iou >= iou_threshold), iou, -np.inf)))
    return {
        "count_acc": float(len(got) == len(want)),
        "box_iou": float(sum(iou[r, c] for r, c in matched) / len(want)) if want else float(not got),
        "label_f1": 2 * len(matched) / (len(got) + len(want)) if got or want else 1.0,
        "f1_50": 2 * hits / (len(got) + len(want)) if got or want else 1.0,
    }


def detection_scores(preds: list[list[dict]], samples: list[dict]) -> dict[str, float]:
    """Mean :func:`box_detection` of predicted boxes against the samples' true boxes."""
    return mean_scores(box_detection(p, s["bboxes"]) for p, s in zip(preds, samples))


PLANAR_RELATIONS = {  # relation -> does it hold between box centres (ax, ay) and (bx, by), y down
    "to the left of": lambda a, b: a[0] < b[0],
    "to the right of": lambda a, b: a[0] > b[0],
    "above": lambda a, b: a[1] < b[1],
    "below": lambda a, b: a[1] > b[1],
}


def box_relation_acc(boxes: list[dict], caption: str) -> float:
    """Share of the caption's left/right/above/below relations that the boxes' centres satisfy; an
    endpoint without a box (a box whose label names its colour and shape) fails. NaN when the caption
    states none (in front of / behind are not visible in boxes)."""
    rels = [r for r in parse_caption(caption).relations if r.relation in PLANAR_RELATIONS]
    if not rels:
        return float("nan")
    centres: dict[tuple[str, str], tuple[float, float]] = {}
    for b in boxes:
        _, color, shape = label_words(str(b.get("label", "")))
        x0, y0, x1, y1 = (float(v) for v in b["box"])
        centres.setdefault((color, shape), ((x0 + x1) / 2, (y0 + y1) / 2))
    held = [
        r.subject in centres and r.object in centres and PLANAR_RELATIONS[r.relation](centres[r.subject], centres[r.object])
        for r in rels
    ]
    return float(np.mean(held))


def mean_defined(values: list[float]) -> float:
    """Mean of the non-NaN values (NaN when there are none)."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8-range images."""
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))
