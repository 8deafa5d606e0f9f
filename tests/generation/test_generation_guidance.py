"""Classifier-free guidance: pass sets, coefficients, batched passes vs separate model calls."""

import pytest
import torch
from gen_testing import random_tokens, toy_model

from fourm.errors import FourmError
from fourm.generation import (
    EncoderInputs,
    GivenTokens,
    Guidance,
    ParallelDecoder,
    SequenceDecoder,
    combine_passes,
    encoder_inputs,
    normalize_conditions,
)


@pytest.fixture(scope="module")
def setup():
    model = toy_model()
    given = normalize_conditions(
        model.config, {"depth": random_tokens("depth", batch=2), "caption": random_tokens("caption", 5, batch=2)}, 2
    )
    return model, given


def parallel_logits(model, sets, coefficients, batch=2):
    passes = EncoderInputs.stack([encoder_inputs(model.config, s, batch) for s in sets])
    decoder = ParallelDecoder(model, "rgb", passes, coefficients)
    tokens = torch.zeros(batch, 16, dtype=torch.long)
    known = torch.zeros(batch, 16, dtype=torch.bool)
    known[:, 3] = True  # one known rgb token, present in every pass
    positions = torch.tensor([[0, 1, 2, 4, 5]] * batch)
    with torch.no_grad():
        return decoder(tokens, known, positions, torch.ones_like(positions, dtype=torch.bool))


def test_scale_zero_is_unconditional_and_scale_one_conditional(setup):
    model, given = setup
    cond, uncond = parallel_logits(model, [given], [1.0]), parallel_logits(model, [{}], [1.0])
    assert not torch.allclose(cond, uncond, atol=1e-3)
    sets, coefficients = Guidance(0.0).passes(given, {})
    assert coefficients == [0.0, 1.0]
    assert torch.allclose(parallel_logits(model, sets, coefficients), uncond, atol=1e-5)
    assert torch.allclose(parallel_logits(model, sets, [1.0, 0.0]), cond, atol=1e-5)  # both passes run
    sets, coefficients = Guidance(1.0).passes(given, {})
    assert len(sets) == 1 and torch.allclose(parallel_logits(model, sets, coefficients), cond, atol=1e-6)
    sets, coefficients = Guidance(3.0).passes(given, {})
    assert torch.allclose(parallel_logits(model, sets, coefficients), uncond + 3.0 * (cond - uncond), atol=1e-4)


def test_weighted_multi_condition_guidance(setup):
    model, given = setup
    sets, coefficients = Guidance(weights={"depth": 2.0, "caption": 0.5}).passes(given, {})
    assert [list(s) for s in sets] == [["depth"], ["caption"], []]
    assert coefficients == [2.0, 0.5, -1.5]
    depth = parallel_logits(model, [{"depth": given["depth"]}], [1.0])
    caption = parallel_logits(model, [{"caption": given["caption"]}], [1.0])
    uncond = parallel_logits(model, [{}], [1.0])
    expected = uncond + 2.0 * (depth - uncond) + 0.5 * (caption - uncond)
    assert torch.allclose(parallel_logits(model, sets, coefficients), expected, atol=1e-4)


def test_unconditional_set_keeps_earlier_outputs(setup):
    _, given = setup
    earlier = {"meta": GivenTokens.at(torch.tensor([1, 2, 3])).expand(2)}
    sets, _ = Guidance(2.0).passes({**given, **earlier}, earlier)
    assert list(sets[0]) == ["depth", "caption", "meta"] and list(sets[1]) == ["meta"]
    sets, _ = Guidance(weights={"depth": 1.5}).passes({**given, **earlier}, earlier)
    assert [sorted(s) for s in sets] == [["depth", "meta"], ["meta"]]


def test_sequence_decoder_guidance_matches_separate_passes(setup):
    model, given = setup
    inputs, positions = torch.tensor([[1, 7, 9]] * 2), torch.arange(3).expand(2, 3)

    def seq_logits(sets, coefficients):
        passes = EncoderInputs.stack([encoder_inputs(model.config, s, 2) for s in sets])
        with torch.no_grad():
            return SequenceDecoder(model, "caption", passes, coefficients)(inputs, positions)

    only_depth = {"depth": given["depth"]}
    cond, uncond = seq_logits([only_depth], [1.0]), seq_logits([{}], [1.0])
    guided = seq_logits(*Guidance(2.5).passes(only_depth, {}))
    assert torch.allclose(guided, uncond + 2.5 * (cond - uncond), atol=1e-4)


def test_combine_passes_and_errors():
    logits = torch.arange(12.0).view(4, 3)  # P=2 passes of B=2
    assert torch.equal(combine_passes(logits, [2.0, -1.0]), 2 * logits[:2] - logits[2:])
    with pytest.raises(FourmError, match="cannot be split into 3 guidance passes"):
        combine_passes(logits, [1.0, 1.0, 1.0])
    with pytest.raises(FourmError, match="not both"):
        Guidance(2.0, {"depth": 1.0})
    with pytest.raises(FourmError, match="guidance weight for 'rgb', which is not a condition"):
        Guidance(weights={"rgb": 1.0}).passes({"depth": None}, {})
