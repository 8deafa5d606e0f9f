"""MaskGIT sampling of image-like targets, and the step loop shared with ROAR.

The target starts all-masked except its given tokens. Each step predicts every masked position,
samples a token for each, and keeps the ``k_t`` most confident ones (log-probability of the sampled
token plus Gumbel noise whose scale anneals to 0), where ``k_t`` follows the token schedule; the
last step fixes everything left. Fixed tokens become encoder inputs of the next step (the logits
function sees them through ``known``). Usage (diffusers-style loop)::

    sampler = MaskGITSampler(steps=8, schedule="cosine", temperature=1.0)
    state = sampler.start(tokens, known, generator)           # (B, L) ids, (B, L) given mask
    while not state.done:
        positions, valid = sampler.queries(state)              # (B, n) masked positions
        logits = logits_fn(state.tokens, state.known, positions, valid)   # (B, n, V)
        state = sampler.step(state, logits, positions, valid, generator)
    # or: tokens = sampler.generate(logits_fn, tokens, known, generator)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.generation.sampling import check_sampling_args, gumbel_noise, sample_tokens, token_log_probs
from fourm.generation.schedules import TemperatureSchedule, fixed_per_step, masked_fraction

# (tokens (B, L), known (B, L), query positions (B, n), query valid (B, n)) -> logits (B, n, V)
LogitsFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


@dataclass
class ParallelState:
    """Progress of a parallel sampler over a batch of targets of length L."""

    tokens: Tensor  # (B, L) long; meaningful where known
    known: Tensor  # (B, L) bool: given or already fixed
    given: Tensor  # (B, L) bool: given by the caller (never changed)
    counts: Tensor  # (B, T) long: tokens to fix at each step
    step_index: int = 0
    order: Tensor | None = None  # (B, L) ROAR: positions in decoding order, masked ones first

    @property
    def steps(self) -> int:
        return self.counts.shape[1]

    @property
    def done(self) -> bool:
        return self.step_index >= self.steps


def scatter_rows(dest: Tensor, positions: Tensor, values: Tensor | bool, mask: Tensor) -> Tensor:
    """Copy of ``dest`` (B, L) with ``dest[b, positions[b, j]] = values[b, j]`` where ``mask`` (B, n)."""
    b, length = dest.shape
    extra = torch.cat([dest, dest[:, :1]], dim=1)  # masked-out writes go to a dropped column
    index = torch.where(mask, positions, length)
    if isinstance(values, bool):
        return extra.scatter_(1, index, values)[:, :length]
    return extra.scatter_(1, index, values.to(dest.dtype))[:, :length]


def _as_schedule(temperature: float | TemperatureSchedule) -> TemperatureSchedule:
    return temperature if isinstance(temperature, TemperatureSchedule) else TemperatureSchedule(float(temperature))


class ParallelSampler:
    """Shared loop of the parallel samplers; subclasses define counts, queries and the step."""

    def __init__(
        self,
        steps: int = 8,
        temperature: float | TemperatureSchedule = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
    ) -> None:
        self.temperature = _as_schedule(temperature)
        check_sampling_args(self.temperature.start, top_k, top_p)
        self.top_k, self.top_p = top_k, top_p
        self.set_steps(steps)

    def set_steps(self, steps: int) -> None:
        """Number of decoding steps of the next generation."""
        if steps < 1:
            raise FourmError(f"steps must be >= 1, got {steps}")
        self.steps = int(steps)

    def step_counts(self, num_masked: Tensor) -> Tensor:
        """Tokens fixed at each step: (B,) -> (B, steps)."""
        raise NotImplementedError

    def start(self, tokens: Tensor, known: Tensor, generator: torch.Generator | None = None) -> ParallelState:
        """Initial state: ``tokens`` (B, L) whose ``known`` (B, L) entries are given."""
        if tokens.shape != known.shape or tokens.dim() != 2:
            raise FourmError(f"tokens {tuple(tokens.shape)} and known {tuple(known.shape)} must both be (B, L)")
        counts = self.step_counts((~known).sum(dim=1))
        return ParallelState(tokens.clone(), known.clone(), known.clone(), counts)

    def queries(self, state: ParallelState) -> tuple[Tensor, Tensor]:
        """Positions (B, n) to predict at the current step and their validity (B, n)."""
        raise NotImplementedError

    def step(
        self,
        state: ParallelState,
        logits: Tensor,  # (B, n, V) at the queried positions
        positions: Tensor,  # (B, n)
        valid: Tensor,  # (B, n)
        generator: torch.Generator | None = None,
    ) -> ParallelState:
        """Fix this step's tokens; returns the next state."""
        raise NotImplementedError

    def sample(self, logits: Tensor, step_index: int, generator: torch.Generator | None) -> Tensor:
        """Tokens (B, n) from logits (B, n, V) at the temperature of ``step_index``, top-k and top-p."""
        temperature = self.temperature.at(step_index, self.steps)
        return sample_tokens(logits, temperature, self.top_k, self.top_p, generator)

    def generate(
        self,
        logits_fn: LogitsFn,
        tokens: Tensor,
        known: Tensor,
        generator: torch.Generator | None = None,
        progress: bool = False,
        callback: Callable[[ParallelState], None] | None = None,
    ) -> Tensor:
        """Run all steps; returns the completed tokens (B, L). ``callback(state)`` after each step."""
        state = self.start(tokens, known, generator)
        active = (state.counts > 0).any(dim=0).tolist()  # steps with work for some sample
        for t in tqdm(range(self.steps), desc=type(self).__name__, disable=not progress, leave=False):
            if not active[t]:
                state = replace(state, step_index=t + 1)
                continue
            positions, valid = self.queries(state)
            logits = logits_fn(state.tokens, state.known, positions, valid)
            state = self.step(state, logits, positions, valid, generator)
            if callback is not None:
                callback(state)
        if not bool(state.known.all()):  # pragma: no cover - invariant of the step counts
            raise AssertionError("parallel sampler left masked tokens")
        return state.tokens


class MaskGITSampler(ParallelSampler):
    """MaskGIT: predict all masked tokens, keep the most confident ones (see the module docstring).

    ``confidence_noise``: scale of the Gumbel noise added to the confidences at the first step,
    annealed linearly to 0 at the last (0 = purely by confidence)."""

    def __init__(
        self,
        steps: int = 8,
        schedule: str = "cosine",
        temperature: float | TemperatureSchedule = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        confidence_noise: float = 1.0,
    ) -> None:
        masked_fraction(schedule)  # validates the name
        if confidence_noise < 0:
            raise FourmError(f"confidence_noise must be >= 0, got {confidence_noise}")
        self.schedule, self.confidence_noise = schedule, float(confidence_noise)
        super().__init__(steps, temperature, top_k, top_p)

    def step_counts(self, num_masked: Tensor) -> Tensor:
        return fixed_per_step(num_masked, self.steps, self.schedule)

    def queries(self, state: ParallelState) -> tuple[Tensor, Tensor]:
        masked = ~state.known
        num = masked.sum(dim=1)  # (B,)
        width = max(1, int(num.max()))
        positions = torch.argsort(state.known.to(torch.uint8), dim=1, stable=True)[:, :width]  # masked first
        valid = torch.arange(width, device=num.device)[None, :] < num[:, None]
        return positions, valid

    def step(self, state, logits, positions, valid, generator=None):
        t, steps = state.step_index, state.steps
        sampled = self.sample(logits, t, generator)  # (B, n)
        confidence = token_log_probs(logits, sampled)
        noise_scale = self.confidence_noise * (1.0 - (t + 1) / steps)
        if noise_scale > 0:
            confidence = confidence + noise_scale * gumbel_noise(confidence.shape, generator, confidence.device)
        confidence = confidence.masked_fill(~valid, float("-inf"))
        rank = confidence.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = most confident
        chosen = valid & (rank < state.counts[:, t : t + 1])
        return replace(
            state,
            tokens=scatter_rows(state.tokens, positions, sampled, chosen),
            known=scatter_rows(state.known, positions, True, chosen),
            step_index=t + 1,
        )
