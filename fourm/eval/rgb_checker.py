"""Is an rgb image consistent with a world caption (and boxes)? A network-free checker.

Steps: segment the image into blobs of the world's named colours (``blobs``); match each object the
caption mentions to a blob of its colour (best (shape, size) posterior, larger blobs preferred);
classify the blob's shape and size (``shape_classifier``); verify the caption's relations from blob
centroids (left / right / above / below; in front / behind only when a depth map is given, by mean
blob depth) and a lone object's position phrase; match given boxes to the mentioned objects' blobs
of the box's shape and measure IoU. ``RgbCheck.scores()`` gives the per-image numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourm.errors import FourmError
from fourm.eval.blobs import Blob, find_blobs
from fourm.eval.boxes import best_assignment, box_iou, label_matches
from fourm.eval.captions import ParsedCaption, parse_caption
from fourm.eval.shape_classifier import CLASSES, ShapeClassifier, default_classifier

EXTRA_BLOB_FRACTION = 0.006  # an unmatched blob this large (of the image area) counts as an extra object
POSITION_BOUNDS = (0.4, 0.6)  # the world's caption thresholds for top/left .. bottom/right


@dataclass
class ObjectCheck:
    """One mentioned object and the blob found for it (None if none of its colour is left)."""

    color: str
    shape: str
    size: str | None  # as stated by the caption
    blob: Blob | None = None
    predicted_shape: str | None = None
    predicted_size: str | None = None

    @property
    def found(self) -> bool:
        return self.blob is not None

    @property
    def shape_ok(self) -> bool:
        return self.found and self.predicted_shape == self.shape

    @property
    def size_ok(self) -> bool:
        return self.found and (self.size is None or self.predicted_size == self.size)


@dataclass
class RelationCheck:
    """A stated relation (or lone-object position) and whether the image agrees (None: unverifiable)."""

    text: str
    ok: bool | None


@dataclass
class RgbCheck:
    """The checker's findings on one image."""

    objects: list[ObjectCheck]
    relations: list[RelationCheck]
    extra: list[Blob] = field(default_factory=list)  # sizeable blobs no mentioned object claimed
    box_ious: list[float] = field(default_factory=list)  # one per given box (0 when unmatched)
    box_ious_any: list[float] = field(default_factory=list)  # the same, any blob, labels ignored

    def scores(self) -> dict[str, float]:
        """Per-image scores in [0, 1] (NaN where undefined) plus the count of extra objects.

        presence: mentioned objects found; shape_acc / size_acc: right shape / size among found;
        object_acc: found with right shape and size among mentioned; relation_acc: verifiable
        relations that hold (a missing endpoint fails); box_iou: mean IoU of each given box with the
        blob of a mentioned object of the box's shape (one-to-one); box_recall50: boxes with that
        IoU >= 0.5; box_iou_any: the same with any blob, labels ignored (layout only); score: mean
        of presence, object_acc, relation_acc."""
        nan = float("nan")
        objs = self.objects
        found = [o for o in objs if o.found]
        sized = [o for o in found if o.size is not None]
        verifiable = [r for r in self.relations if r.ok is not None]

        def frac(num: int, den: int) -> float:
            return num / den if den else nan

        s = {
            "presence": frac(len(found), len(objs)),
            "shape_acc": frac(sum(o.shape_ok for o in found), len(found)),
            "size_acc": frac(sum(o.size_ok for o in sized), len(sized)),
            "object_acc": frac(sum(o.shape_ok and o.size_ok for o in objs), len(objs)),
            "relation_acc": frac(sum(bool(r.ok) for r in verifiable), len(verifiable)),
            "extra_objects": float(len(self.extra)),
            "box_iou": float(np.mean(self.box_ious)) if self.box_ious else nan,
            "box_recall50": float(np.mean([v >= 0.5 for v in self.box_ious])) if self.box_ious else nan,
            "box_iou_any": float(np.mean(self.box_ious_any)) if self.box_ious_any else nan,
        }
        parts = [s[k] for k in ("presence", "object_acc", "relation_acc") if not np.isnan(s[k])]
        s["score"] = float(np.mean(parts)) if parts else nan
        return s


def _log_shape_posterior(proba: np.ndarray, shape: str, size: str | None) -> float:
    """log P(shape[, size] | blob) from the (C,) class posterior."""
    keep = [i for i, (s, z) in enumerate(CLASSES) if s == shape and (size is None or z == size)]
    return float(np.log(max(proba[keep].sum(), 1e-12)))


def _match_objects(
    caption: ParsedCaption, blobs: list[Blob], classifier: ShapeClassifier
) -> tuple[list[ObjectCheck], list[Blob]]:
    """Assign mentioned objects to blobs of their colour; return the checks and unclaimed blobs."""
    shapes, sizes, proba = classifier.predict([b.mask for b in blobs])
    checks = [ObjectCheck(c, s, z) for (c, s), z in caption.objects.items()]
    claimed: set[int] = set()
    for color in {c.color for c in checks}:
        mine = [c for c in checks if c.color == color]
        cand = [i for i, b in enumerate(blobs) if b.color == color]
        if not cand:
            continue
        total = sum(blobs[i].area for i in cand)
        score = np.array(
            [
                [
                    _log_shape_posterior(proba[i], c.shape, c.size) + np.log(blobs[i].area / total)
                    for i in cand
                ]
                for c in mine
            ]
        )
        for r, k in best_assignment(score):
            i = cand[k]
            mine[r].blob, mine[r].predicted_shape, mine[r].predicted_size = blobs[i], shapes[i], sizes[i]
            claimed.add(i)
    return checks, [b for i, b in enumerate(blobs) if i not in claimed]


def _holds(rel: str, a: Blob, b: Blob, depth: np.ndarray | None) -> bool | None:
    (ax, ay), (bx, by) = a.centroid, b.centroid
    if rel in ("in front of", "behind"):
        if depth is None:
            return None
        da, db = float(depth[a.mask].mean()), float(depth[b.mask].mean())
        return da < db if rel == "in front of" else da > db
    return {"to the left of": ax < bx, "to the right of": ax > bx, "above": ay < by, "below": ay > by}[rel]


def _position_ok(blob: Blob, position: tuple[str, str]) -> bool:
    lo, hi = POSITION_BOUNDS
    x, y = blob.centroid
    v = "top" if y < lo else "bottom" if y > hi else ""
    h = "left" if x < lo else "right" if x > hi else ""
    return (v, h) == position


def check_relations(
    caption: ParsedCaption, objects: list[ObjectCheck], depth: np.ndarray | None = None
) -> list[RelationCheck]:
    """Verify the caption's relations (and a lone object's position) on the matched blobs."""
    by_key = {(o.color, o.shape): o for o in objects}
    out = []
    for rel in caption.relations:
        a, b = by_key.get(rel.subject), by_key.get(rel.object)
        text = f"{' '.join(rel.subject)} {rel.relation} {' '.join(rel.object)}"
        if a is None or b is None or not a.found or not b.found:
            unverifiable = depth is None and rel.relation in ("in front of", "behind")
            out.append(RelationCheck(text, None if unverifiable else False))
        else:
            out.append(RelationCheck(text, _holds(rel.relation, a.blob, b.blob, depth)))
    if caption.position is not None and len(objects) == 1:
        o = objects[0]
        ok = o.found and _position_ok(o.blob, caption.position)
        out.append(RelationCheck(f"position {' '.join(caption.position)}", ok))
    return out


def match_boxes(
    boxes: list[dict], blobs: list[Blob], labels: list[tuple[str | None, str]] | None = None
) -> list[float]:
    """IoU of each box ``{"label", "box"}`` with its blob in the best one-to-one assignment (0 if none);
    with ``labels`` ((colour, shape) of each blob's object) a box may only take a blob its label fits
    (the shape it names, and the colour if it names one)."""
    iou = np.full((len(boxes), len(blobs)), -np.inf)
    for i, b in enumerate(boxes):
        for j, blob in enumerate(blobs):
            if labels is None or label_matches(b["label"], None, labels[j][0], labels[j][1]):
                iou[i, j] = box_iou(b["box"], blob.box)
    ious = [0.0] * len(boxes)
    for i, j in best_assignment(iou):
        ious[i] = float(iou[i, j])
    return ious


def check_rgb(
    rgb: np.ndarray,
    caption: str | ParsedCaption,
    boxes: list[dict] | None = None,
    depth: np.ndarray | None = None,
    classifier: ShapeClassifier | None = None,
) -> RgbCheck:
    """Check an rgb image (H, W, 3) uint8 against a caption, optional boxes (schema ``bboxes``) and an
    optional depth map (H, W) for in-front/behind relations."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise FourmError(f"rgb: expected an array of shape (H, W, 3), got {tuple(rgb.shape)}")
    if depth is not None and np.shape(depth) != rgb.shape[:2]:
        raise FourmError(f"depth shape {np.shape(depth)} does not match the image {rgb.shape[:2]}")
    parsed = parse_caption(caption) if isinstance(caption, str) else caption
    blobs = find_blobs(rgb)
    objects, unclaimed = _match_objects(parsed, blobs, classifier or default_classifier())
    found = [o for o in objects if o.found]
    min_extra = EXTRA_BLOB_FRACTION * rgb.shape[0] * rgb.shape[1]
    return RgbCheck(
        objects=objects,
        relations=check_relations(parsed, objects, depth),
        extra=[b for b in unclaimed if b.area >= min_extra],
        box_ious=match_boxes(boxes, [o.blob for o in found], [(o.color, o.shape) for o in found]) if boxes else [],
        box_ious_any=match_boxes(boxes, blobs) if boxes else [],
    )
