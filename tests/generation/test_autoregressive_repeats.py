"""Repeats in the autoregressive sampler: no_repeat_ngram against a brute-force greedy reference,
repetition_penalty against transformers' RepetitionPenaltyLogitsProcessor."""

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from fourm.errors import FourmError
from fourm.generation.autoregressive import AutoregressiveSampler
from fourm.generation.chain import GenerationTarget
from fourm.generation.conditions import GivenTokens

VOCAB = 6


def _table_step(table: torch.Tensor):
    """Logits from a (length + 1, V, V) table by (position of the last input, last input token)."""

    def step(inputs, positions):
        return table[positions, inputs]  # (B, t, V)

    return step


def _reference(table: torch.Tensor, prefix: list[int], length: int, n: int, sos: int) -> list[int]:
    """Greedy decoding that skips, in score order, every token repeating an n-gram seen so far."""
    seq = list(prefix)
    while len(seq) < length:
        last = seq[-1] if seq else sos
        order = torch.argsort(table[len(seq), last], descending=True).tolist()
        seen = {tuple(seq[j : j + n]) for j in range(len(seq) - n + 1)}
        allowed = [t for t in order if len(seq) < n - 1 or tuple(seq[len(seq) - n + 1 :] + [t]) not in seen]
        seq.append((allowed or order)[0])
    return seq


@pytest.mark.parametrize("n", [1, 2, 3])
def test_greedy_with_no_repeat_matches_the_reference(n):
    gen = torch.Generator().manual_seed(n)
    length = 12
    table = torch.randn(length + 1, VOCAB, VOCAB, generator=gen)
    table[:, :, 3] += 4.0  # token 3 everywhere best: plain greedy repeats it
    step = _table_step(table)
    sampler = AutoregressiveSampler(temperature=0.0, sos=1, eos=None, no_repeat_ngram=n)
    out = sampler.generate(step, batch_size=1, length=length).tokens[0].tolist()
    plain = AutoregressiveSampler(temperature=0.0, sos=1, eos=None).generate(step, batch_size=1, length=length)
    assert out == _reference(table, [], length, n, sos=1)
    grams = [tuple(out[j : j + n]) for j in range(len(out) - n + 1)]
    if n > 1:
        assert len(set(grams)) == len(grams)  # every n-gram once (the reference never ran out here)
    else:
        assert len(set(out[:VOCAB])) == VOCAB  # every token once, then repeats (nothing else is left)
    assert plain.tokens[0].tolist().count(3) > out.count(3)


def test_the_given_prefix_counts_and_a_row_is_never_left_empty():
    length = 8
    table = torch.full((length + 1, VOCAB, VOCAB), -1e4)
    table[:, :, 4] = 0.0  # token 4 is the only finite choice
    sampler = AutoregressiveSampler(temperature=0.0, sos=1, eos=None, no_repeat_ngram=2)
    prefix = GivenTokens.at(torch.tensor([[4, 4]]))
    out = sampler.generate(_table_step(table), batch_size=1, length=length, prefix=prefix)
    assert out.tokens[0].tolist()[2] != 4  # (4, 4) is in the prefix: the next 4 would repeat it
    only = torch.full((length + 1, VOCAB, VOCAB), float("-inf"))
    only[:, :, 4] = 0.0  # nothing else is possible: the repeat is allowed rather than no token
    out = sampler.generate(_table_step(only), batch_size=1, length=length, prefix=prefix)
    assert out.tokens[0].tolist() == [4] * length


def test_no_repeat_ngram_is_checked():
    with pytest.raises(FourmError, match="no_repeat_ngram"):
        AutoregressiveSampler(no_repeat_ngram=-1)
    with pytest.raises(FourmError, match="applies to scheme ar only"):
        GenerationTarget(modality="rgb", scheme="maskgit", no_repeat_ngram=3)
    assert GenerationTarget(modality="caption", scheme="ar", no_repeat_ngram=3).no_repeat_ngram == 3


def _penalty_reference(table: torch.Tensor, prefix: list[int], length: int, penalty: float, sos: int) -> list[int]:
    """Greedy decoding with transformers' RepetitionPenaltyLogitsProcessor on the sequence so far."""
    processor = RepetitionPenaltyLogitsProcessor(penalty)
    seq = list(prefix)
    while len(seq) < length:
        scores = table[len(seq), seq[-1] if seq else sos][None].clone()
        if seq:
            scores = processor(torch.tensor([seq]), scores)
        seq.append(int(scores.argmax()))
    return seq


@pytest.mark.parametrize("penalty", [0.7, 1.3, 2.5])
def test_greedy_with_a_penalty_matches_transformers(penalty):
    gen = torch.Generator().manual_seed(int(penalty * 10))
    length = 14
    table = torch.randn(length + 1, VOCAB, VOCAB, generator=gen)
    table[:, :, 3] += 1.5  # token 3 usually best: plain greedy repeats it
    step = _table_step(table)
    sampler = AutoregressiveSampler(temperature=0.0, sos=1, eos=None, repetition_penalty=penalty)
    prefix = [5, 3]
    out = sampler.generate(step, 1, length, prefix=GivenTokens.at(torch.tensor([prefix]))).tokens[0].tolist()
    assert out == _penalty_reference(table, prefix, length, penalty, sos=1)
    plain = AutoregressiveSampler(temperature=0.0, sos=1, eos=None).generate(step, 1, length).tokens[0].tolist()
    if penalty > 1:
        assert out.count(3) < plain.count(3)  # the penalty changed what greedy picks


def test_a_penalty_of_one_changes_nothing_and_rows_are_penalised_apart():
    length = 10
    table = torch.randn(length + 1, VOCAB, VOCAB, generator=torch.Generator().manual_seed(0))
    step = _table_step(table)
    prefix = GivenTokens.at(torch.tensor([[2, 2], [4, 5]]))
    plain = AutoregressiveSampler(temperature=0.0, sos=1, eos=None).generate(step, 2, length, prefix=prefix)
    one = AutoregressiveSampler(temperature=0.0, sos=1, eos=None, repetition_penalty=1.0)
    assert torch.equal(one.generate(step, 2, length, prefix=prefix).tokens, plain.tokens)
    two = AutoregressiveSampler(temperature=0.0, sos=1, eos=None, repetition_penalty=2.0)
    out = two.generate(step, 2, length, prefix=prefix).tokens.tolist()
    for row, given in zip(out, ([2, 2], [4, 5])):
        assert row == _penalty_reference(table, given, length, 2.0, sos=1)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_penalty_is_one_clear_error(bad):
    with pytest.raises(FourmError, match="repetition_penalty must be a finite number > 0"):
        AutoregressiveSampler(repetition_penalty=bad)
    with pytest.raises(FourmError, match="target 'caption': repetition_penalty"):
        GenerationTarget(modality="caption", scheme="ar", repetition_penalty=bad)


def test_a_penalty_is_refused_for_parallel_targets():
    with pytest.raises(FourmError, match="applies to scheme ar only"):
        GenerationTarget(modality="rgb", scheme="maskgit", repetition_penalty=1.3)
    assert GenerationTarget(modality="caption", scheme="ar", repetition_penalty=1.3).repetition_penalty == 1.3
