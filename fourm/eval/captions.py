"""Read world captions back into objects, relations and counts; score a caption against the truth.

World captions (``fourm.data.world.captions``) name each object as ``[size] colour shape`` and link
objects with relations ("the red circle is to the left of the blue star", "a small red star is in
front of a large green circle, which is below ..."). The parser is template-free: it finds every
object mention and every relation phrase, and a relation links the mention just before it to the
mention just after it, so it also reads imperfect generated captions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fourm.data.world.captions import NUMBER_WORDS
from fourm.data.world.palette import COLORS, SHAPES, SIZES

RELATIONS = ("to the left of", "to the right of", "above", "below", "in front of", "behind")
INVERSE = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
    "in front of": "behind",
    "behind": "in front of",
}
_MENTION = re.compile(
    rf"\b(?:({'|'.join(SIZES)})\s+)?({'|'.join(COLORS)})\s+({'|'.join(SHAPES)})s?\b", re.IGNORECASE
)
_RELATION = re.compile(rf"\b({'|'.join(RELATIONS)})\b", re.IGNORECASE)
_LINK = re.compile(r"^\s*,?\s*(?:which\s+)?(?:is|are)?\s*$", re.IGNORECASE)  # mention ... relation
_ARTICLE = re.compile(r"^\s*(?:the|a|an)?\s*$", re.IGNORECASE)  # relation ... mention
_COUNT = re.compile(
    rf"\b(?:there are ({'|'.join(NUMBER_WORDS)}) shapes|in total ({'|'.join(NUMBER_WORDS)}) objects)\b",
    re.IGNORECASE,
)
_SINGLE = re.compile(r"\bthere is a single\b|^\s*one\b", re.IGNORECASE)
_POSITION = re.compile(
    r"\b(?:in the (top|bottom) (left|right) corner|at the (top|bottom)|on the (left|right)|in the (middle))"
    r" of the image\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Relation:
    """``subject`` (colour, shape) is ``relation`` of ``object`` (colour, shape)."""

    subject: tuple[str, str]
    relation: str
    object: tuple[str, str]


@dataclass
class ParsedCaption:
    """What a caption states: objects (colour, shape) -> size (None if unsaid), relations, counts."""

    objects: dict[tuple[str, str], str | None] = field(default_factory=dict)
    relations: list[Relation] = field(default_factory=list)
    stated_count: int | None = None  # "there are three shapes" / "a single" / "one ..."
    position: tuple[str, str] | None = None  # lone object: (vertical, horizontal), '' for centre

    @property
    def count(self) -> int:
        """The stated number of objects, else the number of distinct objects mentioned."""
        return self.stated_count if self.stated_count is not None else len(self.objects)


def parse_caption(text: str) -> ParsedCaption:
    """Objects, relations, stated count and lone-object position of a (world-style) caption."""
    out = ParsedCaption()
    mentions = list(_MENTION.finditer(text))
    for m in mentions:
        size, key = m.group(1), (m.group(2).lower(), m.group(3).lower())
        if out.objects.get(key) is None:
            out.objects[key] = size.lower() if size else None
    for r in _RELATION.finditer(text):
        before = [m for m in mentions if m.end() <= r.start()]
        after = [m for m in mentions if m.start() >= r.end()]
        if not before or not after:
            continue
        a, b = before[-1], after[0]
        if _LINK.match(text[a.end() : r.start()]) and _ARTICLE.match(text[r.end() : b.start()]):
            out.relations.append(
                Relation(
                    (a.group(2).lower(), a.group(3).lower()),
                    r.group(1).lower(),
                    (b.group(2).lower(), b.group(3).lower()),
                )
            )
    count = _COUNT.search(text)
    if count:
        out.stated_count = NUMBER_WORDS.index((count.group(1) or count.group(2)).lower())
    elif _SINGLE.search(text):
        out.stated_count = 1
    pos = _POSITION.search(text)
    if pos:
        g = [x.lower() if x else "" for x in pos.groups()]
        out.position = (g[0] or g[2], g[1] or g[3])
    return out


def _prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float]:
    precision = tp / n_pred if n_pred else float(n_true == 0)
    recall = tp / n_true if n_true else 1.0
    return precision, recall


def caption_accuracy(pred: ParsedCaption | str, true: ParsedCaption | str) -> dict[str, float]:
    """Attribute accuracy of a caption vs the ground truth (parsed captions or raw text).

    - ``pair_precision`` / ``pair_recall`` / ``pair_f1``: (colour, shape) pairs, as sets;
    - ``color_precision`` / ``color_recall`` and ``shape_precision`` / ``shape_recall``: as sets;
    - ``size_acc``: matched pairs whose stated size is right (NaN if no matched pair states one);
    - ``count_acc``: 1 if the caption's object count (the one it states, else the objects it names)
      equals the true count; ``listed_count_acc``: 1 if the distinct objects it names are as many
      (a caption stating "three shapes" that names one of them twice is right by the first only);
    - ``exact``: 1 if the (colour, shape) pairs are exactly the true ones.
    """
    pred = parse_caption(pred) if isinstance(pred, str) else pred
    true = parse_caption(true) if isinstance(true, str) else true
    scores: dict[str, float] = {}
    for name, p_set, t_set in (
        ("pair", set(pred.objects), set(true.objects)),
        ("color", {c for c, _ in pred.objects}, {c for c, _ in true.objects}),
        ("shape", {s for _, s in pred.objects}, {s for _, s in true.objects}),
    ):
        scores[f"{name}_precision"], scores[f"{name}_recall"] = _prf(
            len(p_set & t_set), len(p_set), len(t_set)
        )
    p, r = scores["pair_precision"], scores["pair_recall"]
    scores["pair_f1"] = 2 * p * r / (p + r) if p + r else 0.0
    sized = [k for k in pred.objects if k in true.objects and pred.objects[k] and true.objects[k]]
    scores["size_acc"] = (
        sum(pred.objects[k] == true.objects[k] for k in sized) / len(sized) if sized else float("nan")
    )
    scores["count_acc"] = float(pred.count == len(true.objects))
    scores["listed_count_acc"] = float(len(pred.objects) == len(true.objects))
    scores["exact"] = float(set(pred.objects) == set(true.objects))
    return scores
