"""MaskGIT and ROAR samplers: schedule, given tokens, completion, seeding, query positions."""

import pytest
import torch
from gen_testing import random_tokens, toy_model

from fourm.errors import FourmError
from fourm.generation import (
    EncoderInputs,
    GivenTokens,
    MaskGITSampler,
    ParallelDecoder,
    ROARSampler,
    encoder_inputs,
    fixed_per_step,
    make_generator,
    normalize_conditions,
)

V, L, B = 11, 30, 3


def fake_logits(tokens, known, positions, valid):
    """Logits that depend on position and on how many tokens are known: (B, n, V)."""
    base = torch.sin(positions[..., None].float() * 0.7 + torch.arange(V) * 1.3) * 3
    return base + known.sum(dim=1, dtype=torch.float)[:, None, None] * 0.01


def partial_start(seed: int = 0):
    """(B, L) tokens / known with a different number of given tokens per sample."""
    gen = torch.Generator().manual_seed(seed)
    known = torch.zeros(B, L, dtype=torch.bool)
    known[0, [0, 5, 9]] = True
    known[2, :12] = True
    tokens = torch.where(known, torch.randint(V, (B, L), generator=gen), 0)
    return tokens, known


@pytest.mark.parametrize("schedule", ["cosine", "linear", "sqrt"])
def test_maskgit_fixes_tokens_per_schedule_keeps_given_and_completes(schedule):
    tokens, known = partial_start()
    sampler = MaskGITSampler(steps=6, schedule=schedule, temperature=1.0)
    seen = []
    out = sampler.generate(fake_logits, tokens, known, make_generator(0), callback=lambda s: seen.append(s.known.sum(1)))
    counts = torch.stack([seen[0] - known.sum(1)] + [b - a for a, b in zip(seen, seen[1:])], dim=1)
    assert torch.equal(counts, fixed_per_step((~known).sum(1), 6, schedule))
    assert seen[-1].tolist() == [L] * B  # nothing left masked
    assert torch.equal(out[known], tokens[known])  # given tokens never change
    assert ((out >= 0) & (out < V)).all()


def test_maskgit_queries_are_the_masked_positions():
    tokens, known = partial_start()
    sampler = MaskGITSampler(steps=4)
    state = sampler.start(tokens, known)
    while not state.done:
        positions, valid = sampler.queries(state)
        masked = [set((~state.known[b]).nonzero().flatten().tolist()) for b in range(B)]
        for b in range(B):
            assert set(positions[b][valid[b]].tolist()) == masked[b]
        state = sampler.step(state, fake_logits(state.tokens, state.known, positions, valid), positions, valid)
    assert state.known.all() and torch.equal(state.given, known)


def test_maskgit_greedy_without_noise_fixes_the_most_confident_first():
    logits = torch.zeros(1, 4, V)
    logits[0, torch.arange(4), 0] = torch.tensor([1.0, 5.0, 3.0, 2.0])  # confidence order: 1, 2, 3, 0
    sampler = MaskGITSampler(steps=2, schedule="linear", temperature=0.0, confidence_noise=0.0)
    state = sampler.start(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool))
    positions, valid = sampler.queries(state)
    state = sampler.step(state, logits.gather(1, positions[..., None].expand(1, 4, V)), positions, valid)
    assert state.known.tolist() == [[False, True, True, False]]


def test_roar_fixed_chunks_in_random_order_keeps_given():
    tokens, known = partial_start()
    sampler = ROARSampler(steps=5, temperature=1.0)
    state = sampler.start(tokens, known, make_generator(0))
    fixed_per = []
    while not state.done:
        positions, valid = sampler.queries(state)
        before = state.known.clone()
        assert not before.gather(1, positions)[valid].any()  # only masked positions are queried
        state = sampler.step(state, fake_logits(state.tokens, state.known, positions, valid), positions, valid)
        newly = state.known & ~before
        for b in range(B):  # exactly the queried positions get fixed
            assert set(newly[b].nonzero().flatten().tolist()) == set(positions[b][valid[b]].tolist())
        fixed_per.append(newly.sum(1))
    n = (~known).sum(1)
    chunk = -(-n // 5)
    for b in range(B):
        col = [int(f[b]) for f in fixed_per]
        assert sum(col) == n[b] and all(c == chunk[b] for c in col[:-1] if c) and max(col) == chunk[b]
    assert state.known.all() and torch.equal(state.tokens[known], tokens[known])
    orders = [ROARSampler(steps=5).start(tokens, known, make_generator(s)).order for s in (1, 2)]
    assert not torch.equal(orders[0], orders[1])


@pytest.mark.parametrize("sampler_cls", [MaskGITSampler, ROARSampler])
def test_same_seed_same_tokens_different_seed_differs(sampler_cls):
    tokens, known = partial_start()
    sampler = sampler_cls(steps=4, temperature=2.0)
    a = sampler.generate(fake_logits, tokens, known, make_generator(5))
    b = sampler.generate(fake_logits, tokens, known, make_generator(5))
    c = sampler.generate(fake_logits, tokens, known, make_generator(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_set_steps_and_bad_arguments():
    sampler = MaskGITSampler(steps=8)
    sampler.set_steps(3)
    assert sampler.start(torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 5, dtype=torch.bool)).counts.shape == (1, 3)
    with pytest.raises(FourmError, match="steps must be >= 1"):
        sampler.set_steps(0)
    with pytest.raises(FourmError, match="unknown token schedule"):
        MaskGITSampler(schedule="coss")
    with pytest.raises(FourmError, match="confidence_noise must be >= 0"):
        MaskGITSampler(confidence_noise=-1)


def test_maskgit_on_a_model_feeds_fixed_tokens_to_the_encoder():
    model = toy_model()
    config = model.config
    given = normalize_conditions(config, {"depth": random_tokens("depth")}, num_samples=2)
    passes = encoder_inputs(config, given)
    decoder = ParallelDecoder(model, "rgb", passes, [1.0])
    calls = []
    original = model.encode

    def spy(tokens, modality, position, valid, patches=None):
        calls.append((tokens.clone(), modality.clone(), position.clone(), valid.clone()))
        return original(tokens, modality, position, valid, patches)

    model.encode = spy
    partial = GivenTokens.at(torch.tensor([3, 4]), positions=torch.tensor([2, 11])).expand(2)
    start, known = partial.on_grid(16)
    with torch.no_grad():
        out = MaskGITSampler(steps=4).generate(decoder, start, known, make_generator(0))
    assert out[:, 2].tolist() == [3, 3] and out[:, 11].tolist() == [4, 4]
    assert len(calls) == 4
    for tokens, modality, position, valid in calls[1:]:  # later steps see earlier fixed rgb tokens
        for b in range(2):
            rgb = valid[b] & (modality[b] == 0)
            assert rgb.sum() > 2
            assert torch.equal(tokens[b][rgb], out[b, position[b][rgb]])
    assert calls[0][3][:, :].sum(1).tolist() == [9 + 2, 9 + 2]  # depth + the two given rgb tokens
    assert isinstance(passes, EncoderInputs)
