"""Boxes: IoU of [x0, y0, x1, y1] boxes and the best one-to-one assignment by a score matrix."""

from __future__ import annotations

import itertools

import numpy as np

from fourm.data.world.palette import COLORS, SHAPES, SIZES

EXHAUSTIVE_LIMIT = 7  # exact search up to this many rows/columns, greedy beyond


def label_words(label: str) -> tuple[str | None, str | None, str | None]:
    """(size, colour, shape) a box label names, None for each it does not: 'small red circle' ->
    ('small', 'red', 'circle'); 'circle' -> (None, None, 'circle'). Unknown words are ignored."""
    words = str(label).lower().split()

    def pick(known) -> str | None:
        return next((w for w in reversed(words) if w in known), None)

    return pick(SIZES), pick(COLORS), pick(SHAPES)


def label_matches(label: str, size: str | None, color: str | None, shape: str) -> bool:
    """Whether a box label fits an object: the shape must be named; a named size or colour must agree."""
    lab_size, lab_color, lab_shape = label_words(label)
    return (
        lab_shape == shape
        and (lab_size is None or size is None or lab_size == size)
        and (lab_color is None or color is None or lab_color == color)
    )


def box_iou(a: tuple[float, ...] | list[float], b: tuple[float, ...] | list[float]) -> float:
    """Intersection over union of two boxes [x0, y0, x1, y1] (x0 <= x1, y0 <= y1); 0 if both empty."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def best_assignment(score: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (row, col), each row and column used at most once, over finite entries only (-inf = not
    allowed): as many pairs as possible, then the largest summed score.  score: (R, C)"""
    score = np.asarray(score, dtype=np.float64)
    n_rows, n_cols = score.shape
    if n_rows == 0 or n_cols == 0:
        return []
    if max(n_rows, n_cols) > EXHAUSTIVE_LIMIT:
        pairs, used_r, used_c = [], set(), set()
        for flat in np.argsort(-score, axis=None):
            r, c = divmod(int(flat), n_cols)
            if r not in used_r and c not in used_c and np.isfinite(score[r, c]):
                pairs.append((r, c))
                used_r.add(r)
                used_c.add(c)
        return sorted(pairs)
    best, best_pairs = -np.inf, []
    transposed = n_rows > n_cols
    s = score.T if transposed else score  # rows <= cols
    for cols in itertools.permutations(range(s.shape[1]), s.shape[0]):
        pairs = [(r, c) for r, c in enumerate(cols) if np.isfinite(s[r, c])]
        total = sum(s[r, c] for r, c in pairs) if pairs else 0.0
        if (len(pairs), total) > (len(best_pairs), best):
            best, best_pairs = total, pairs
    return sorted((c, r) for r, c in best_pairs) if transposed else best_pairs
