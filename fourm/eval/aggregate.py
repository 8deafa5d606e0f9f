"""Averaging per-sample score dicts into one table row (NaN = undefined for that sample)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def mean_scores(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean over the rows, ignoring NaN (NaN where a key has no defined value)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in rows:
        for k, v in row.items():
            sums.setdefault(k, 0.0)
            counts.setdefault(k, 0)
            if v is not None and not math.isnan(v):
                sums[k] += float(v)
                counts[k] += 1
    return {k: sums[k] / counts[k] if counts[k] else float("nan") for k in sums}
