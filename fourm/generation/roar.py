"""ROAR: random-order autoregressive sampling of image-like targets.

The masked positions of each sample are shuffled once (seeded); each step predicts only the next
chunk of ``ceil(N / steps)`` positions in that order, samples them and fixes them all. Fixed tokens
become encoder inputs of the following steps, as in MaskGIT. Same loop as
:class:`fourm.generation.maskgit.MaskGITSampler` (``start`` / ``queries`` / ``step`` / ``generate``).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from fourm.generation.maskgit import ParallelSampler, ParallelState, scatter_rows
from fourm.generation.schedules import chunks_per_step


class ROARSampler(ParallelSampler):
    """Random order, a fixed number of tokens per step (the last step may fix fewer)."""

    def step_counts(self, num_masked: Tensor) -> Tensor:
        return chunks_per_step(num_masked, self.steps)

    def start(self, tokens: Tensor, known: Tensor, generator: torch.Generator | None = None) -> ParallelState:
        state = super().start(tokens, known, generator)
        scores = torch.rand(known.shape, generator=generator, device=known.device).masked_fill_(known, 2.0)
        return replace(state, order=scores.argsort(dim=1))  # masked positions first, shuffled

    def queries(self, state: ParallelState) -> tuple[Tensor, Tensor]:
        t = state.step_index
        done = state.counts[:, :t].sum(dim=1)  # (B,) positions of the order already decoded
        count = state.counts[:, t]
        width = max(1, int(count.max()))
        offsets = torch.arange(width, device=count.device)[None, :]
        index = (done[:, None] + offsets).clamp_(max=state.order.shape[1] - 1)
        return state.order.gather(1, index), offsets < count[:, None]

    def step(self, state, logits, positions, valid, generator=None):
        t = state.step_index
        sampled = self.sample(logits, t, generator)  # (B, n)
        return replace(
            state,
            tokens=scatter_rows(state.tokens, positions, sampled, valid),
            known=scatter_rows(state.known, positions, True, valid),
            step_index=t + 1,
        )
