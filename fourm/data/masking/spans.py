"""T5-style span masking for sequence modalities, and its exact inverse.

Convention (``x`` = content tokens ``c_0 .. c_{n-1}`` followed by [EOS]; ``S_i`` = i-th sentinel)::

    original       c_0 c_1 c_2 c_3 c_4 c_5 [EOS]             spans chosen: (1, 3) and (5, 6)
    encoder input  c_0 [S_0] c_3 c_4 [S_1] [EOS]             each masked span -> one sentinel
    decoder target [S_0] c_1 c_2 [S_1] c_5 [EOS]             sentinel, then the span it hides
    decoder input  [SOS] [S_0] c_1 c_2 [S_1] c_5             target shifted right by one

Spans are non-empty, never touch each other (at least one visible token between two spans) and
may start at the first token or end at the last content token; [EOS] is never masked. Sentinels
are used in order S_0, S_1, ... . :func:`unmask_spans` puts encoder input and decoder target back
together into the original sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourm.errors import FourmError
from fourm.utils.config import Config


@dataclass(frozen=True)
class SequenceSpecialTokens(Config):
    """Special ids of a sequence vocabulary (from the text tokenizer): pad, sos, eos, sentinels."""

    pad: int
    sos: int
    eos: int
    sentinels: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sentinels:
            raise FourmError("SequenceSpecialTokens.sentinels is empty (expected at least one sentinel id)")
        ids = [self.pad, self.sos, self.eos, *self.sentinels]
        if len(set(ids)) != len(ids):
            raise FourmError(f"SequenceSpecialTokens ids must be distinct, got pad/sos/eos/sentinels = {ids}")

    @property
    def num_sentinels(self) -> int:
        return len(self.sentinels)


@dataclass
class SpanMasked:
    """One span-masked sequence: ``encoder_input`` (Le,), ``decoder_target`` (Ld,), ``decoder_input`` (Ld,)."""

    encoder_input: np.ndarray
    decoder_target: np.ndarray
    decoder_input: np.ndarray
    num_spans: int
    num_masked: int


def _split_content(sequence: np.ndarray, eos: int) -> np.ndarray:
    """Content tokens of ``sequence`` (its trailing [EOS], if any, removed)."""
    if len(sequence) and sequence[-1] == eos:
        return sequence[:-1]
    return sequence


def _positive_composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """Random split of ``total`` into ``parts`` positive integers (requires total >= parts >= 1)."""
    if parts == 1:
        return np.array([total], dtype=np.int64)
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]]))


def _nonneg_composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """Random split of ``total`` into ``parts`` non-negative integers (stars and bars)."""
    return _positive_composition(total + parts, parts, rng) - 1


def span_layout(
    length: int, noise_density: float, mean_span_length: float, max_spans: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random span starts and lengths over ``length`` content tokens, sorted by start.

    About ``length * noise_density`` tokens are masked (at least 1, at most ``length``) in about
    ``masked / mean_span_length`` spans (at most ``max_spans``). Returns ``(starts, lengths)``.
    """
    if length < 1:
        raise FourmError(f"cannot span-mask a sequence with {length} content tokens (need at least 1)")
    if not 0.0 < noise_density <= 1.0:
        raise FourmError(f"noise_density must be in (0, 1], got {noise_density}")
    if mean_span_length < 1.0:
        raise FourmError(f"mean_span_length must be >= 1, got {mean_span_length}")
    num_masked = int(np.clip(round(length * noise_density), 1, length))
    num_visible = length - num_masked
    # spans need a visible token between each other: num_spans - 1 <= num_visible
    num_spans = int(
        np.clip(round(num_masked / mean_span_length), 1, min(num_masked, num_visible + 1, max_spans))
    )
    span_lengths = _positive_composition(num_masked, num_spans, rng)
    # visible runs: before the first span (>= 0), between spans (>= 1), after the last span (>= 0)
    gaps = _nonneg_composition(num_visible - (num_spans - 1), num_spans + 1, rng)
    gaps[1:-1] += 1
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0], np.cumsum(span_lengths)[:-1]])
    return starts.astype(np.int64), span_lengths.astype(np.int64)


def apply_spans(
    sequence: np.ndarray, starts: np.ndarray, lengths: np.ndarray, specials: SequenceSpecialTokens
) -> SpanMasked:
    """Build encoder input / decoder target / decoder input from a span layout (see module doc)."""
    content = _split_content(np.asarray(sequence, dtype=np.int64), specials.eos)
    if len(starts) > specials.num_sentinels:
        raise FourmError(f"{len(starts)} spans but only {specials.num_sentinels} sentinel ids")
    enc: list[np.ndarray] = []
    dec: list[np.ndarray] = []
    cursor = 0
    for i, (start, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
        if start < cursor or n < 1 or start + n > len(content):
            raise FourmError(f"invalid span {i}: start {start}, length {n} (content length {len(content)})")
        sentinel = np.array([specials.sentinels[i]], dtype=np.int64)
        enc += [content[cursor:start], sentinel]
        dec += [sentinel, content[start : start + n]]
        cursor = start + n
    eos = np.array([specials.eos], dtype=np.int64)
    enc += [content[cursor:], eos]
    dec += [eos]
    target = np.concatenate(dec)
    dec_input = np.concatenate([[specials.sos], target[:-1]]).astype(np.int64)
    return SpanMasked(np.concatenate(enc), target, dec_input, len(starts), int(lengths.sum()))


def span_mask(
    sequence: np.ndarray,
    noise_density: float,
    mean_span_length: float,
    specials: SequenceSpecialTokens,
    rng: np.random.Generator,
) -> SpanMasked:
    """T5-style span masking of one sequence (content + [EOS]); see the module docstring."""
    content = _split_content(np.asarray(sequence, dtype=np.int64), specials.eos)
    starts, lengths = span_layout(len(content), noise_density, mean_span_length, specials.num_sentinels, rng)
    return apply_spans(sequence, starts, lengths, specials)


def unmask_spans(encoder_input, decoder_target, specials: SequenceSpecialTokens) -> np.ndarray:
    """Invert :func:`span_mask`: put each span of ``decoder_target`` back in place of its sentinel.

    Returns the original sequence including its trailing [EOS]. A target truncated before its
    [EOS] restores the spans it holds; missing spans raise FourmError.
    """
    enc = [int(t) for t in np.asarray(encoder_input).reshape(-1)]
    dec = [int(t) for t in np.asarray(decoder_target).reshape(-1)]
    sentinel_index = {s: i for i, s in enumerate(specials.sentinels)}
    spans: dict[int, list[int]] = {}
    current: int | None = None
    for tok in dec:
        if tok == specials.eos:
            break
        if tok in sentinel_index:
            current = sentinel_index[tok]
            spans[current] = []
        elif current is None:
            raise FourmError(f"decoder target must start with a sentinel, got token {tok}")
        else:
            spans[current].append(tok)
    out: list[int] = []
    for tok in enc:
        if tok in sentinel_index:
            i = sentinel_index[tok]
            if i not in spans:
                raise FourmError(f"sentinel S_{i} (id {tok}) has no span in the decoder target")
            out += spans[i]
        else:
            out.append(tok)
            if tok == specials.eos:
                break
    if not out or out[-1] != specials.eos:
        out.append(specials.eos)
    return np.asarray(out, dtype=np.int64)
