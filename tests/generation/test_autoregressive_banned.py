"""Banned ids and a minimum length in the autoregressive sampler."""

import torch

from fourm.generation.autoregressive import AutoregressiveSampler


def _favouring(ids: list[int], vocab: int = 8):
    """A step function whose logits rank ``ids`` first, in order (then everything else)."""
    scores = torch.zeros(vocab)
    for rank, i in enumerate(ids):
        scores[i] = 10.0 - rank

    def step(inputs, positions):
        return scores.expand(inputs.shape[0], inputs.shape[1], vocab).clone()

    return step


def test_banned_ids_are_never_sampled_and_eos_waits_for_min_length():
    step = _favouring([2, 5, 6, 3])  # EOS (2) best, then two "sentinels" 5 and 6, then content 3
    plain = AutoregressiveSampler(temperature=0.0, eos=2).generate(step, batch_size=2, length=4)
    assert plain.tokens[:, 0].tolist() == [2, 2]  # stops at once
    sampler = AutoregressiveSampler(temperature=0.0, eos=2, banned=[5, 6], min_length=2)
    out = sampler.generate(step, batch_size=2, length=4)
    assert out.tokens.tolist() == [[3, 3, 2, 0]] * 2  # content until min_length, then EOS
    sampled = AutoregressiveSampler(temperature=2.0, eos=None, banned=[5, 6]).generate(
        step, batch_size=64, length=4, generator=torch.Generator().manual_seed(0)
    )
    assert not torch.isin(sampled.tokens, torch.tensor([5, 6])).any()


def test_eos_cannot_be_banned():
    import pytest

    from fourm.errors import FourmError

    with pytest.raises(FourmError, match="cannot be banned"):
        AutoregressiveSampler(eos=2, banned=[2])
