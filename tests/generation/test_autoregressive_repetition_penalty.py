"""repetition_penalty in the autoregressive sampler: greedy decoding against Hugging Face's processor."""

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from fourm.errors import FourmError
from fourm.generation.autoregressive import AutoregressiveSampler
from fourm.generation.chain import GenerationTarget
from fourm.generation.conditions import GivenTokens

VOCAB = 7


def _table_step(table: torch.Tensor):
    """Logits from a (length + 1, V, V) table by (position of the last input, last input token)."""

    def step(inputs, positions):
        return table[positions, inputs]  # (B, t, V)

    return step


def _reference(table: torch.Tensor, prefix: list[int], length: int, penalty: float, sos: int) -> list[int]:
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
    assert out == _reference(table, prefix, length, penalty, sos=1)
    plain = AutoregressiveSampler(temperature=0.0, sos=1, eos=None).generate(step, 1, length).tokens[0].tolist()
    if penalty > 1:
        assert out.count(3) < plain.count(3)  # the penalty changed what greedy picks


def test_a_penalty_of_one_changes_nothing_and_rows_are_penalised_apart():
    length = 10
    table = torch.randn(length + 1, VOCAB, VOCAB, generator=torch.Generator().manual_seed(0))
    step = _table_step(table)
    prefix = GivenTokens.at(torch.tensor([[2, 2], [4, 6]]))
    plain = AutoregressiveSampler(temperature=0.0, sos=1, eos=None).generate(step, 2, length, prefix=prefix)
    one = AutoregressiveSampler(temperature=0.0, sos=1, eos=None, repetition_penalty=1.0)
    assert torch.equal(one.generate(step, 2, length, prefix=prefix).tokens, plain.tokens)
    two = AutoregressiveSampler(temperature=0.0, sos=1, eos=None, repetition_penalty=2.0)
    out = two.generate(step, 2, length, prefix=prefix).tokens.tolist()
    for row, given in zip(out, ([2, 2], [4, 6])):
        assert row == _reference(table, given, length, 2.0, sos=1)


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
