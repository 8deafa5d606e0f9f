"""Step schedules of the parallel samplers: how many tokens each step fixes, and the temperature.

A token schedule is a decreasing "still masked" fraction ``gamma(r)`` over the progress ``r`` in
[0, 1] (``gamma(0) = 1``, ``gamma(1) = 0``), as in MaskGIT. With ``N`` masked tokens and ``T``
steps, after step ``s`` (1-based) ``floor(N * gamma(s / T))`` tokens stay masked, adjusted so that
every step fixes at least one token while any are left and the last step fixes all the rest::

    fixed_per_step(torch.tensor([196]), 8, "cosine")   # tensor([[4, 11, 19, 24, 30, 33, 37, 38]])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from fourm.errors import FourmError

TokenScheduleName = Literal["cosine", "linear", "square", "cubic", "sqrt", "uniform"]
TemperatureScheduleName = Literal["constant", "linear", "cosine"]

MASKED_FRACTION: dict[str, Callable[[float], float]] = {
    "cosine": lambda r: math.cos(math.pi / 2 * r),  # few tokens first, many at the end
    "linear": lambda r: 1.0 - r,  # the same number every step ("uniform" is an alias)
    "uniform": lambda r: 1.0 - r,
    "square": lambda r: 1.0 - r * r,
    "cubic": lambda r: 1.0 - r**3,
    "sqrt": lambda r: 1.0 - math.sqrt(r),  # many tokens first
}


def masked_fraction(name: str) -> Callable[[float], float]:
    """The function ``gamma(r)`` of token schedule ``name`` (FourmError if unknown)."""
    if name not in MASKED_FRACTION:
        raise FourmError(f"unknown token schedule '{name}' (known: {', '.join(MASKED_FRACTION)})")
    return MASKED_FRACTION[name]


def fixed_per_step(num_masked: Tensor, steps: int, schedule: str = "cosine") -> Tensor:
    """Tokens to fix at each step: (B,) masked counts -> (B, steps) long, each row summing to its count.

    Every step fixes at least one token (``num_masked >= steps``); a row with fewer tokens than
    steps fixes one per step and then none.
    """
    if steps < 1:
        raise FourmError(f"steps must be >= 1, got {steps}")
    gamma = masked_fraction(schedule)
    num_masked = num_masked.long().reshape(-1)
    if (num_masked < 0).any():
        raise FourmError(f"num_masked must be >= 0, got {num_masked.tolist()}")
    fractions = torch.tensor([gamma(s / steps) for s in range(1, steps + 1)], dtype=torch.float64)
    fractions[-1] = 0.0
    scaled = num_masked.double()[:, None] * fractions.to(num_masked.device)
    remaining = torch.floor(scaled + 1e-9).long()  # (B, T); the epsilon absorbs 20 * 0.2 = 3.99..
    lowest = torch.minimum(num_masked, torch.tensor(steps, device=num_masked.device))  # (B,)
    columns = [num_masked]
    for s in range(steps):  # at least one token per step while any are left, none left at the end
        upper = torch.minimum(remaining[:, s], columns[-1] - 1)
        columns.append(torch.maximum(upper, lowest - (s + 1)).clamp(min=0))
    left = torch.stack(columns, dim=1)  # (B, T + 1), left[:, 0] = N, left[:, T] = 0
    return left[:, :-1] - left[:, 1:]


def chunks_per_step(num_masked: Tensor, steps: int) -> Tensor:
    """Equal chunks (ROAR): (B,) masked counts -> (B, steps), ``ceil(N / steps)`` tokens per step
    until all are fixed (the last non-empty step may fix fewer)."""
    if steps < 1:
        raise FourmError(f"steps must be >= 1, got {steps}")
    num_masked = num_masked.long().reshape(-1)
    chunk = -(-num_masked // steps)  # (B,) ceil
    done = torch.arange(steps + 1, device=num_masked.device)[None, :] * chunk[:, None]  # (B, T + 1)
    done = torch.minimum(done, num_masked[:, None])
    return done[:, 1:] - done[:, :-1]


@dataclass(frozen=True)
class TemperatureSchedule:
    """Sampling temperature over the steps: ``constant`` (= start), or ``linear`` / ``cosine``
    annealing from ``start`` at the first step to ``end`` at the last."""

    start: float = 1.0
    end: float = 0.0
    kind: TemperatureScheduleName = "constant"

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "linear", "cosine"):
            raise FourmError(f"unknown temperature schedule '{self.kind}' (known: constant, linear, cosine)")
        if not all(math.isfinite(t) and t >= 0 for t in (self.start, self.end)):
            raise FourmError(f"temperatures must be >= 0 and finite, got start {self.start}, end {self.end}")

    def at(self, step: int, steps: int) -> float:
        """Temperature of step ``step`` (0-based) of ``steps``."""
        if self.kind == "constant" or steps <= 1:
            return self.start
        r = step / (steps - 1)
        weight = 1.0 - r if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * r))
        return self.end + (self.start - self.end) * weight
