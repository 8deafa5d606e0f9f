"""The report of the world evaluation (:mod:`fourm.eval.world`): the model / ceiling / baseline
table, JSON-safe results and the grid of example outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from fourm.data.visualize import colorize_depth, colorize_semseg, draw_boxes, sample_grid
from fourm.utils.atomic import atomic_path

NUM_EXAMPLES = 4  # rows of examples.png


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


TABLE = [  # (row label, metric, model path, ceiling path, baseline path); paths into the results
    ("rgb->semseg", "mIoU", "rgb_to_semseg.miou", "tokenizer_ceiling.semseg.miou", "baselines.semseg_other_scene.miou"),
    ("rgb->semseg", "pixel acc", "rgb_to_semseg.pixel_acc", "tokenizer_ceiling.semseg.pixel_acc",
     "baselines.semseg_all_background.pixel_acc"),
    ("rgb->semseg", "objects found (fg IoU)", "rgb_to_semseg.fg_iou", "tokenizer_ceiling.semseg.fg_iou",
     "baselines.semseg_other_scene.fg_iou"),
    ("rgb->semseg", "shape right on found", "rgb_to_semseg.fg_class_acc", "tokenizer_ceiling.semseg.fg_class_acc",
     "baselines.semseg_other_scene.fg_class_acc"),
    ("rgb->depth", "MAE", "rgb_to_depth.mae", "tokenizer_ceiling.depth.mae", "baselines.depth_constant.mae"),
    ("rgb->depth", "RMSE", "rgb_to_depth.rmse", "tokenizer_ceiling.depth.rmse", "baselines.depth_constant.rmse"),
    ("rgb->depth", "abs rel", "rgb_to_depth.abs_rel", "tokenizer_ceiling.depth.abs_rel",
     "baselines.depth_constant.abs_rel"),
    ("rgb->depth", "delta<1.25", "rgb_to_depth.delta1", "tokenizer_ceiling.depth.delta1",
     "baselines.depth_constant.delta1"),
    ("rgb->caption", "pair F1", "rgb_to_caption.pair_f1", "tokenizer_ceiling.caption.pair_f1",
     "baselines.caption_other_scene.pair_f1"),
    ("rgb->caption", "colour recall", "rgb_to_caption.color_recall", "tokenizer_ceiling.caption.color_recall",
     "baselines.caption_other_scene.color_recall"),
    ("rgb->caption", "shape recall", "rgb_to_caption.shape_recall", "tokenizer_ceiling.caption.shape_recall",
     "baselines.caption_other_scene.shape_recall"),
    ("rgb->caption", "count acc", "rgb_to_caption.count_acc", "tokenizer_ceiling.caption.count_acc",
     "baselines.caption_other_scene.count_acc"),
    ("rgb->caption", "distinct objects named = count", "rgb_to_caption.listed_count_acc",
     "tokenizer_ceiling.caption.listed_count_acc", "baselines.caption_other_scene.listed_count_acc"),
    ("rgb->caption", "relations on gt", "rgb_to_caption.relation_acc_on_gt_image",
     "tokenizer_ceiling.caption.relation_acc_on_gt_image", "baselines.caption_other_scene.relation_acc_on_gt_image"),
] + [
    ("rgb->bboxes", metric, f"rgb_to_bboxes.{m}", f"tokenizer_ceiling.bboxes_detection.{m}",
     f"baselines.bboxes_other_scene.{m}")
    for metric, m in (("count acc", "count_acc"), ("label F1", "label_f1"), ("box IoU", "box_iou"),
                      ("F1 at IoU 0.5", "f1_50"))
] + [
    (task, metric, f"{key}.{m}", f"tokenizer_ceiling.rgb_checker.{m}", f"baselines.checker_other_scene.{m}")
    for task, key in (("caption->rgb", "caption_to_rgb"), ("caption->bbox->rgb", "caption_to_bboxes_to_rgb"))
    for metric, m in (("presence", "presence"), ("shape acc", "shape_acc"), ("size acc", "size_acc"),
                      ("relation acc", "relation_acc"), ("checker score", "score"))
] + [
    ("caption->bbox->rgb", "box IoU", "caption_to_bboxes_to_rgb.box_iou", "tokenizer_ceiling.rgb_checker.box_iou",
     "baselines.checker_other_scene.box_iou"),
    ("caption->bbox->rgb", "box IoU any blob", "caption_to_bboxes_to_rgb.box_iou_any",
     "tokenizer_ceiling.rgb_checker.box_iou_any", "baselines.checker_other_scene.box_iou_any"),
    ("caption->bbox->rgb", "box labels F1", "caption_to_bboxes_to_rgb.bbox_label_f1",
     "tokenizer_ceiling.bboxes_label_f1", "baselines.bbox_labels_other_scene_f1"),
    ("caption->bbox->rgb", "box relations", "caption_to_bboxes_to_rgb.bbox_relation_acc",
     "tokenizer_ceiling.bboxes_relation_acc", "baselines.bbox_relations_other_positions"),
    ("caption->bbox->rgb", "boxes / sample", "caption_to_bboxes_to_rgb.boxes_per_sample",
     "tokenizer_ceiling.boxes_per_sample", "-"),
    ("caption->bbox->rgb", "parse failures", "caption_to_bboxes_to_rgb.parse_failures", "-", "-"),
]  # fmt: skip


def lookup(results: dict, path: str):
    """The value at a dotted ``path`` of nested ``results`` (None when absent)."""
    node = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def table(results: dict) -> str:
    """The results as a text table: one row per (task, metric), model vs tokenizer ceiling vs baseline."""
    lines = [f"{'task':<20}{'metric':<18}{'model':>8}{'ceiling':>10}{'baseline':>10}", "-" * 66]
    for task, metric, model, ceiling, baseline in TABLE:
        vals = [lookup(results, p) if p != "-" else None for p in (model, ceiling, baseline)]
        lines.append(f"{task:<20}{metric:<18}{_fmt(vals[0]):>8}{_fmt(vals[1]):>10}{_fmt(vals[2]):>10}")
    gt = results["checker_ground_truth"]
    lines.append(
        "checker on ground-truth images: "
        + ", ".join(
            f"{k} {_fmt(gt[k])}" for k in ("presence", "shape_acc", "size_acc", "relation_acc", "box_iou")
        )
    )
    lines.append("ceiling: ground truth through the tokenizer; baseline: another scene's value / a constant")
    return "\n".join(lines)


def jsonable(obj):
    """NaN -> None (valid JSON), numpy scalars -> floats."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(float(obj)) else float(obj)
    return obj


def save_examples(path: Path, samples: list[dict], gen: dict[str, dict[str, list]]) -> None:
    """A grid: one row per example, ground truth and every task's output side by side."""
    columns = {  # column -> (task, picture of sample i); a task not run leaves its column out
        "rgb->semseg": ("rgb_to_semseg", lambda g, i: colorize_semseg(g["semseg"][i])),
        "rgb->depth": ("rgb_to_depth", lambda g, i: colorize_depth(g["depth"][i])),
        "rgb->caption": ("rgb_to_caption", lambda g, i: g["caption"][i]),
        "rgb->bboxes": ("rgb_to_bboxes", lambda g, i, s=samples: draw_boxes(s[i]["rgb"], g["bboxes"][i], labels=False)),
        "caption->rgb": ("caption_to_rgb", lambda g, i: g["rgb"][i]),
        "caption->bbox->rgb": (
            "caption_to_bboxes_to_rgb",
            lambda g, i: draw_boxes(g["rgb"][i], g["bboxes"][i], labels=False),
        ),
    }
    rows = []
    for i, s in enumerate(samples[:NUM_EXAMPLES]):
        row = {"truth": draw_boxes(s["rgb"], s["bboxes"], labels=False), "caption": s["caption"]}
        row.update({name: draw(gen[task], i) for name, (task, draw) in columns.items() if task in gen})
        rows.append(row)
    picture = sample_grid(rows, list(rows[0]), scale=2)
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
