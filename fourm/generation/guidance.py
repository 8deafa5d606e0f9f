"""Classifier-free guidance: which condition sets to run, and how to mix their logits.

Every guided prediction runs P "passes" (condition sets) batched into one model call of P * B rows
and mixes their logits linearly, ``logits = sum_p c_p * logits_p``:

* plain CFG with scale ``s``: passes (conditional, unconditional), ``c = (s, 1 - s)``, i.e.
  ``u + s * (c - u)``; scale 1 runs the conditional pass only, scale 0 gives the unconditional.
* weighted multi-condition guidance with weights ``w_m`` per condition modality ``m``: one pass per
  weighted condition (that condition alone) plus the unconditional one,
  ``u + sum_m w_m * (c_m - u)``.

The "unconditional" set is not necessarily empty: in chained generation it holds the modalities
generated so far (it grows with each finished target), so guidance pushes towards the user's
conditions without fighting the earlier outputs. The target's own known tokens are in every pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fourm.errors import FourmError
from fourm.generation.conditions import GivenTokens


@dataclass(frozen=True)
class Guidance:
    """Guidance of one target: a CFG ``scale`` or per-condition ``weights`` (not both)."""

    scale: float = 1.0
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.scale):
            raise FourmError(f"guidance scale must be a finite number, got {self.scale}")
        bad = [m for m, w in self.weights.items() if not math.isfinite(w)]
        if bad:
            raise FourmError(f"guidance weight of '{bad[0]}' must be a finite number, got {self.weights[bad[0]]}")
        if self.weights and self.scale != 1.0:
            raise FourmError(
                f"give either a guidance scale ({self.scale}) or per-condition guidance weights "
                f"({dict(self.weights)}), not both"
            )

    @property
    def enabled(self) -> bool:
        """Whether more than the plain conditional pass is needed."""
        return bool(self.weights) or self.scale != 1.0

    def passes(
        self, conditions: Mapping[str, GivenTokens], unconditional: Mapping[str, GivenTokens]
    ) -> tuple[list[dict[str, GivenTokens]], list[float]]:
        """Condition sets of the passes and their logit coefficients.

        ``conditions``: everything the target is conditioned on (the unconditional set included);
        ``unconditional``: what stays in the unconditional pass."""
        if self.weights:
            unknown = [m for m in self.weights if m not in conditions]
            if unknown:
                raise FourmError(
                    f"guidance weight for '{unknown[0]}', which is not a condition of this target "
                    f"(conditions: {', '.join(conditions) or 'none'})"
                )
            sets = [{**unconditional, m: conditions[m]} for m in self.weights]
            coefficients = [float(w) for w in self.weights.values()]
            return [*sets, dict(unconditional)], [*coefficients, 1.0 - sum(coefficients)]
        if self.scale == 1.0:
            return [dict(conditions)], [1.0]
        return [dict(conditions), dict(unconditional)], [self.scale, 1.0 - self.scale]


def combine_passes(logits: Tensor, coefficients: Sequence[float]) -> Tensor:
    """Mix logits of P passes stacked on the batch, (P * B, ..., V) -> (B, ..., V) in fp32."""
    num = len(coefficients)
    if num == 0 or logits.shape[0] % num:
        raise FourmError(f"{logits.shape[0]} logit rows cannot be split into {num} guidance passes")
    logits = logits.float()
    if num == 1:
        return logits if coefficients[0] == 1.0 else logits * coefficients[0]
    per_pass = logits.unflatten(0, (num, -1))  # (P, B, ..., V)
    out = per_pass[0] * coefficients[0]
    for p in range(1, num):
        out = torch.add(out, per_pass[p], alpha=coefficients[p])
    return out
