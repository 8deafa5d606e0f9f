"""Autoregressive decoding: KV cache vs the no-cache reference, [EOS] stopping, prefixes."""

import pytest
import torch
from gen_testing import EOS, PAD, SOS, random_tokens, toy_model

from fourm.errors import FourmError
from fourm.generation import (
    AutoregressiveSampler,
    GivenTokens,
    SequenceDecoder,
    encoder_inputs,
    make_generator,
    normalize_conditions,
)


@pytest.fixture(scope="module")
def model():
    return toy_model()


def decoders(model, batch=3, use_cache=True):
    given = normalize_conditions(model.config, {"rgb": random_tokens("rgb", batch=batch)}, batch)
    return SequenceDecoder(model, "caption", encoder_inputs(model.config, given), [1.0], use_cache=use_cache)


def test_cache_gives_the_same_greedy_tokens_and_close_logits(model):
    sampler = AutoregressiveSampler(temperature=0.0, sos=SOS, eos=None, pad=PAD)
    with torch.no_grad():
        cached = sampler.generate(decoders(model), 3, 12, return_logits=True)
        reference = sampler.generate(decoders(model, use_cache=False), 3, 12, return_logits=True)
    assert torch.equal(cached.tokens, reference.tokens)
    assert len(cached.logits) == len(reference.logits) == 12
    for a, b in zip(cached.logits, reference.logits):
        assert a.dtype == torch.float32
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cached.logits[0], cached.logits[5], atol=1e-3)  # logits depend on the prefix


def test_cache_matches_reference_when_sampling_with_a_seed(model):
    sampler = AutoregressiveSampler(temperature=1.0, top_k=8, sos=SOS, eos=EOS, pad=PAD)
    with torch.no_grad():
        a = sampler.generate(decoders(model), 3, 12, generator=make_generator(4))
        b = sampler.generate(decoders(model, use_cache=False), 3, 12, generator=make_generator(4))
        c = sampler.generate(decoders(model), 3, 12, generator=make_generator(5))
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)


def test_decoder_sees_sos_then_previous_tokens(model):
    """Feeding a whole sequence at once (teacher forcing) = feeding it token by token."""
    seq = torch.tensor([[5, 9, 13, 7]] * 3)
    inputs = torch.cat([torch.full((3, 1), SOS), seq[:, :-1]], dim=1)
    positions = torch.arange(4).expand(3, 4)
    with torch.no_grad():
        at_once = decoders(model)(inputs, positions)
        step = decoders(model)
        one_by_one = torch.cat([step(inputs[:, i : i + 1], positions[:, i : i + 1]) for i in range(4)], dim=1)
    assert torch.allclose(at_once, one_by_one, atol=1e-5)


class ScriptedStep:
    """Step function whose greedy token for sample b at position i is script[b][i]."""

    def __init__(self, script, vocab=20):
        self.script, self.vocab, self.calls = script, vocab, []

    def __call__(self, inputs, positions):
        self.calls.append((inputs.clone(), positions.clone()))
        pos = positions[:, -1]
        logits = torch.zeros(inputs.shape[0], inputs.shape[1], self.vocab)
        for b, row in enumerate(self.script):
            logits[b, -1, row[min(int(pos[b]), len(row) - 1)]] = 10.0
        return logits


def test_stops_at_eos_per_sample_and_pads_after():
    script = [[5, 6, EOS, 7, 8, 9], [5, EOS, 9, 9, 9, 9], [4, 4, 4, 4, EOS, 9]]
    step = ScriptedStep(script)
    out = AutoregressiveSampler(temperature=0.0, sos=SOS, eos=EOS, pad=PAD).generate(step, 3, 8)
    assert out.tokens.tolist() == [
        [5, 6, EOS, PAD, PAD, PAD, PAD, PAD],
        [5, EOS, PAD, PAD, PAD, PAD, PAD, PAD],
        [4, 4, 4, 4, EOS, PAD, PAD, PAD],
    ]
    assert out.lengths.tolist() == [3, 2, 5]
    assert len(step.calls) == 5  # stops as soon as every sample has finished
    assert step.calls[0][0].tolist() == [[SOS]] * 3 and step.calls[1][0].tolist() == [[5], [5], [4]]
    assert [int(c[1][0, 0]) for c in step.calls] == [0, 1, 2, 3, 4]


def test_without_eos_runs_to_length_and_prefix_is_kept():
    script = [[3, 3, 3, 3, 3, 3]] * 2
    step = ScriptedStep(script)
    prefix = GivenTokens.at(torch.tensor([7, 8]))
    out = AutoregressiveSampler(temperature=0.0, sos=SOS, eos=None).generate(step, 2, 6, prefix=prefix)
    assert out.tokens.tolist() == [[7, 8, 3, 3, 3, 3]] * 2 and out.valid.all()
    assert step.calls[0][0].tolist() == [[SOS, 7, 8]] * 2  # prefix fed in one call
    assert step.calls[0][1].tolist() == [[0, 1, 2]] * 2


def test_bad_prefix_and_length():
    sampler = AutoregressiveSampler()
    step = ScriptedStep([[3]])
    with pytest.raises(FourmError, match="same number of valid tokens at positions 0..n-1"):
        sampler.generate(step, 1, 6, prefix=GivenTokens.at(torch.tensor([7, 8]), positions=torch.tensor([1, 2])))
    with pytest.raises(FourmError, match="more than the maximum length 2"):
        sampler.generate(step, 1, 2, prefix=GivenTokens.at(torch.tensor([7, 8, 9])))
    with pytest.raises(FourmError, match="length must be >= 1"):
        sampler.generate(step, 1, 0)


@pytest.mark.parametrize("overrides", [{"qk_norm": True}, {"norm": "rmsnorm", "tie_embeddings": True}])
def test_cache_matches_reference_with_padded_context_and_other_layers(overrides):
    model = toy_model(**overrides)
    valid = torch.tensor([[True] * 5, [True, True, False, False, False]])  # rows of unequal length
    caption = GivenTokens.at(random_tokens("caption", 5, batch=2), valid=valid)
    given = normalize_conditions(model.config, {"caption": caption}, 2)
    enc = encoder_inputs(model.config, given)
    assert not enc.compact().valid.all()  # the context has padding
    inputs = torch.tensor([[SOS, 4, 9, 3, 17], [SOS, 8, 8, 30, 2]])
    positions = torch.arange(5).expand(2, 5)
    with torch.no_grad():
        cached = SequenceDecoder(model, "caption", enc, [1.0])
        steps = [cached(inputs[:, :2], positions[:, :2])] + [cached(inputs[:, i : i + 1], positions[:, i : i + 1]) for i in range(2, 5)]
        reference = SequenceDecoder(model, "caption", enc, [1.0], use_cache=False)(inputs, positions)
    assert torch.allclose(torch.cat(steps, dim=1), reference, atol=1e-5, rtol=1e-5)
