"""Left-to-right decoding of sequence targets (captions, serialised boxes, metadata).

The decoder input at position i is the token at position i - 1 ([SOS] at position 0), as in
training. Sampling is greedy (temperature 0) or temperature / top-k / top-p; each sample stops at
its first [EOS] and is padded after it; decoding ends when all samples have stopped or the maximum
length is reached. A given prefix is fed in one call and generation continues after it. The step
function is usually a :class:`fourm.generation.decoding.SequenceDecoder` (KV cache, or the no-cache
reference path)::

    sampler = AutoregressiveSampler(temperature=0.0, sos=1, eos=2, pad=0)
    out = sampler.generate(SequenceDecoder(model, "caption", enc, [1.0]), batch_size=4, length=32)
    out.tokens, out.valid            # (4, 32) ids padded after [EOS], (4, 32) bool up to [EOS]

A ``processor`` (a grammar, :mod:`fourm.generation.grammar`) restricts each step to the tokens
that keep the sequence well-formed; it reads the given prefix first and works with any step
function (KV cache or not) since it only sees the chosen tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.generation.conditions import GivenTokens
from fourm.generation.grammar import LogitsProcessor
from fourm.generation.sampling import check_repetition_penalty, check_sampling_args, sample_tokens

# (decoder inputs (B, k), positions (B, k)) -> logits (B, k, V) for these positions
StepFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class SequenceOutput:
    """Generated sequences: ``tokens`` (B, L) padded after [EOS], ``valid`` (B, L) up to and
    including [EOS]; ``logits``: per generated position, the (B, V) logits it was sampled from
    (only with ``return_logits``)."""

    tokens: Tensor
    valid: Tensor
    logits: list[Tensor] = field(default_factory=list)

    @property
    def lengths(self) -> Tensor:
        """(B,) number of valid tokens of each sample."""
        return self.valid.sum(dim=1)


class AutoregressiveSampler:
    """Greedy / temperature / top-k / top-p next-token sampling with per-sample [EOS] stopping.

    ``eos=None`` never stops early (every sample runs to ``length``). ``banned``: ids never sampled
    (e.g. span sentinels, [MASK], [SOS], [PAD]: training-only tokens that are not content);
    ``min_length``: no [EOS] before this many tokens (for modalities that are never empty);
    ``processor``: a grammar whose (B, V) mask of allowed tokens applies at every step (where it
    and ``banned`` / ``min_length`` leave a row nothing, the grammar alone decides);
    ``no_repeat_ngram`` n > 0: a token that would repeat n tokens in a row already in the sequence
    (prefix included) is not sampled, unless that leaves a row nothing;
    ``repetition_penalty`` p > 1: the logit of every token already in the sequence (prefix included)
    is divided by p where positive and multiplied by p where negative, before sampling (CTRL's penalty,
    as ``repetition_penalty`` in Hugging Face generation); 1 = off, p < 1 favours repeats."""

    def __init__(
        self,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        sos: int = 1,
        eos: int | None = 2,
        pad: int = 0,
        banned: Sequence[int] = (),
        min_length: int = 0,
        processor: LogitsProcessor | None = None,
        no_repeat_ngram: int = 0,
        repetition_penalty: float = 1.0,
    ) -> None:
        check_sampling_args(temperature, top_k, top_p)
        if no_repeat_ngram < 0:
            raise FourmError(f"no_repeat_ngram must be >= 0, got {no_repeat_ngram}")
        check_repetition_penalty(repetition_penalty)
        self.no_repeat_ngram = int(no_repeat_ngram)
        self.repetition_penalty = float(repetition_penalty)
        self.temperature, self.top_k, self.top_p = float(temperature), top_k, top_p
        self.sos, self.eos, self.pad = sos, eos, pad
        self.banned = sorted({int(i) for i in banned})
        self.min_length = int(min_length)  # [EOS] is not sampled before this many tokens
        if eos is not None and eos in self.banned:
            raise FourmError(f"the [EOS] id {eos} cannot be banned")
        if processor is not None and eos is None:
            raise FourmError("a grammar needs an [EOS] id to end the sequence (eos=None given)")
        self.processor = processor

    def _constrain(self, logits: Tensor, i: int) -> Tensor:
        """Logits (B, V) with the tokens not allowed at position ``i`` set to -inf."""
        eos_banned = i < self.min_length and self.eos is not None
        if not (self.banned or eos_banned or self.processor is not None):
            return logits
        allowed = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
        allowed[self.banned] = False
        if eos_banned:
            allowed[self.eos] = False
        allowed = allowed[None, :].expand_as(logits)
        if self.processor is not None:
            grammar = self.processor.allowed(i).to(logits.device)
            allowed = allowed & grammar
            allowed = torch.where(allowed.any(dim=1, keepdim=True), allowed, grammar)
        return logits.masked_fill(~allowed, float("-inf"))

    def _penalize_repeats(self, logits: Tensor, tokens: Tensor, i: int) -> Tensor:
        """Logits (B, V) with the tokens among ``tokens[:, :i]`` penalised (``repetition_penalty``)."""
        p = self.repetition_penalty
        if p == 1.0 or i == 0:
            return logits
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, tokens[:, :i], True)  # (B, V)
        penalised = torch.where(logits > 0, logits / p, logits * p)
        return torch.where(seen, penalised, logits)

    def _repeat_mask(self, tokens: Tensor, i: int, vocab: int) -> Tensor | None:
        """(B, V) bool: the tokens that would end, at position ``i``, an n-gram already among
        ``tokens[:, :i]`` (n = ``no_repeat_ngram``); None when there is nothing to ban."""
        n = self.no_repeat_ngram
        if n == 0 or i < n:
            return None
        banned = torch.zeros(tokens.shape[0], vocab, dtype=torch.bool, device=tokens.device)
        seen = tokens[:, :i].unfold(1, n, 1)  # (B, i - n + 1, n) every n-gram so far
        current = tokens[:, i - n + 1 : i]  # (B, n - 1) the tokens the next one would extend
        match = (seen[:, :, : n - 1] == current[:, None, :]).all(dim=2)  # (B, i - n + 1)
        rows, starts = match.nonzero(as_tuple=True)
        banned[rows, seen[rows, starts, n - 1]] = True
        return banned if rows.numel() else None

    def _prefix(self, prefix: GivenTokens | None, batch_size: int, length: int, device) -> Tensor:
        """Checked prefix ids (B, p) (p may be 0)."""
        if prefix is None:
            return torch.zeros(batch_size, 0, dtype=torch.long, device=device)
        prefix = prefix.expand(batch_size, "prefix")
        p = prefix.tokens.shape[1]
        expected = torch.arange(p, device=prefix.positions.device).expand_as(prefix.positions)
        if not (bool(prefix.valid.all()) and torch.equal(prefix.positions, expected)):
            raise FourmError(
                "a given sequence prefix must be the same number of valid tokens at positions 0..n-1 in every sample"
            )
        if p > length:
            raise FourmError(f"the given prefix has {p} tokens, more than the maximum length {length}")
        return prefix.tokens.to(device)

    def generate(
        self,
        step_fn: StepFn,
        batch_size: int,
        length: int,
        prefix: GivenTokens | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        return_logits: bool = False,
        progress: bool = False,
    ) -> SequenceOutput:
        """Decode up to ``length`` tokens per sample (prefix included)."""
        if length < 1:
            raise FourmError(f"length must be >= 1, got {length}")
        given = self._prefix(prefix, batch_size, length, device)
        p = given.shape[1]
        tokens = torch.full((batch_size, length), self.pad, dtype=torch.long, device=device)
        tokens[:, :p] = given
        if self.eos is not None:
            finished = (given == self.eos).any(dim=1)
        else:
            finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
        positions = torch.arange(length, device=device)[None, :].expand(batch_size, length)
        sos = torch.full((batch_size, 1), self.sos, dtype=torch.long, device=device)
        inputs = torch.cat([sos, given], dim=1)[:, :length]  # [SOS] + prefix
        logged: list[Tensor] = []
        if self.processor is not None:
            self.processor.start(given, length)
        if p < length and not bool(finished.all()):
            logits = step_fn(inputs, positions[:, : inputs.shape[1]])[:, -1]  # (B, V)
            for i in tqdm(range(p, length), desc="autoregressive", disable=not progress, leave=False):
                if return_logits:
                    logged.append(logits.float())
                logits = self._constrain(self._penalize_repeats(logits, tokens, i), i)
                repeats = self._repeat_mask(tokens, i, logits.shape[-1])
                if repeats is not None:  # never leaves a row nothing: the old choices stay then
                    kept = logits.masked_fill(repeats, float("-inf"))
                    logits = torch.where(torch.isinf(kept).all(dim=1, keepdim=True), logits, kept)
                token = sample_tokens(logits, self.temperature, self.top_k, self.top_p, generator)  # (B,)
                token = torch.where(finished, self.pad, token)
                tokens[:, i] = token
                if self.processor is not None:
                    self.processor.advance(token)
                if self.eos is not None:
                    finished = finished | (token == self.eos)
                    if bool(finished.all()):
                        break
                if i + 1 < length:
                    logits = step_fn(token[:, None], positions[:, i + 1 : i + 2])[:, -1]
        return SequenceOutput(tokens, self.valid_mask(tokens), logged)

    def valid_mask(self, tokens: Tensor) -> Tensor:
        """(B, L) bool: tokens up to and including the first [EOS] generated or given."""
        if self.eos is None:
            return torch.ones_like(tokens, dtype=torch.bool)
        is_eos = (tokens == self.eos).long()
        return (is_eos.cumsum(dim=1) - is_eos) == 0
