"""Dirichlet token budgets: split an integer token budget across modalities.

A share vector (a Dirichlet draw, or its mean in deterministic mode) is turned into integer
budgets by water-filling: modality ``m`` gets ``clip(lam * share_m, lo_m, cap_m)`` with one scale
``lam`` chosen so the budgets sum to the total, where ``cap_m = min(available_m, max_m)`` and
``lo_m = min(min_m, cap_m)``. What a capped modality cannot use therefore flows to the others in
proportion to their shares. The result is rounded by largest remainders, so the integer budgets
sum exactly to ``min(total, what the modalities can take)``. Modalities with share 0 (alpha 0)
receive only their minimum.
"""

from __future__ import annotations

import numpy as np

from fourm.errors import FourmError


def draw_shares(alphas: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Dirichlet draw with concentration ``alphas`` (M,); zero alphas get share 0. ``rng=None``
    returns the Dirichlet mean ``alphas / alphas.sum()``."""
    alphas = np.asarray(alphas, dtype=np.float64)
    if (alphas < 0).any() or not np.isfinite(alphas).all():
        raise FourmError(f"Dirichlet alphas must be finite and >= 0, got {alphas.tolist()}")
    shares = np.zeros_like(alphas)
    positive = alphas > 0
    if not positive.any():
        return shares
    if rng is None:
        shares[positive] = alphas[positive] / alphas[positive].sum()
        return shares
    draw = rng.dirichlet(alphas[positive]) if positive.sum() > 1 else np.ones(1)
    if not np.isfinite(draw).all() or draw.sum() <= 0:  # tiny alphas can underflow: one-hot fallback
        draw = np.eye(int(positive.sum()))[
            rng.choice(int(positive.sum()), p=alphas[positive] / alphas[positive].sum())
        ]
    shares[positive] = draw / draw.sum()
    return shares


def _round_exact(x: np.ndarray, lo: np.ndarray, cap: np.ndarray, total: int) -> np.ndarray:
    """Integers in [lo, cap] close to ``x`` summing to ``total`` (largest-remainder rounding)."""
    out = np.clip(np.floor(x + 1e-9), lo, cap).astype(np.int64)
    remainder = x - out
    while (deficit := total - int(out.sum())) != 0:
        if deficit > 0:
            room = np.flatnonzero(out < cap)
            order = room[np.argsort(-remainder[room], kind="stable")][:deficit]
            out[order] += 1
        else:
            room = np.flatnonzero(out > lo)
            order = room[np.argsort(remainder[room], kind="stable")][:-deficit]
            out[order] -= 1
        remainder = x - out
    return out


def allocate(
    total: int,
    shares: np.ndarray,
    available: np.ndarray,
    min_tokens: np.ndarray | None = None,
    max_tokens: np.ndarray | None = None,
) -> np.ndarray:
    """Integer budgets (M,) ~ ``total * shares`` within [min, min(max, available)] (see module doc).

    They sum to ``min(total, sum of what can be given)`` exactly. If the minimums alone exceed
    ``total`` they are scaled down to fit.
    """
    shares = np.asarray(shares, dtype=np.float64)
    cap = np.asarray(available, dtype=np.int64).copy()
    if max_tokens is not None:
        cap = np.minimum(cap, np.asarray(max_tokens, dtype=np.int64))
    cap = np.maximum(cap, 0)
    lo = np.zeros_like(cap) if min_tokens is None else np.minimum(np.asarray(min_tokens, dtype=np.int64), cap)
    total = int(total)
    if len(cap) == 0 or total <= 0:
        return np.zeros(len(cap), dtype=np.int64)
    if lo.sum() >= total:  # minimums do not fit: share the total in proportion to them
        return allocate(total, lo / lo.sum(), lo) if lo.sum() > total else lo
    if shares.sum() > 0:
        shares = shares / shares.sum()
    grow = shares > 1e-12  # vanishing shares (tiny Dirichlet alphas) count as 0
    target = min(total, int(lo.sum() + (cap - lo)[grow].sum()))
    if target <= lo.sum():
        return lo
    # f(lam) = sum clip(lam * s, lo, cap) is piecewise linear and non-decreasing: solve f(lam) = target
    s = shares[grow]
    breaks = np.unique(np.concatenate([lo[grow] / s, cap[grow] / s]))
    fixed = lo[~grow].sum()

    def f(lam: np.ndarray) -> np.ndarray:  # (K,) -> (K,)
        return fixed + np.clip(lam[:, None] * s[None, :], lo[grow], cap[grow]).sum(1)

    values = f(breaks)
    k = int(np.searchsorted(values, target - 1e-9))
    k = min(max(k, 1), len(breaks) - 1) if len(breaks) > 1 else 0
    if len(breaks) == 1 or values[k] == values[k - 1]:
        lam = breaks[k]
    else:
        lam = breaks[k - 1] + (target - values[k - 1]) * (breaks[k] - breaks[k - 1]) / (
            values[k] - values[k - 1]
        )
    x = lo.astype(np.float64)
    x[grow] = np.clip(lam * s, lo[grow], cap[grow])
    return _round_exact(x, lo, cap, target)


def dirichlet_budgets(
    total: int,
    alphas: np.ndarray,
    available: np.ndarray,
    rng: np.random.Generator | None,
    min_tokens: np.ndarray | None = None,
    max_tokens: np.ndarray | None = None,
) -> np.ndarray:
    """Draw Dirichlet shares with ``alphas`` (M,) and :func:`allocate` ``total`` tokens with them.

    ``rng=None`` uses the Dirichlet mean (deterministic evaluation budgets).
    """
    return allocate(total, draw_shares(alphas, rng), available, min_tokens, max_tokens)
