"""Token sampling: top-k / top-p sets, temperature, seeding, the sampled distribution."""

import pytest
import torch

from fourm.errors import FourmError
from fourm.generation.sampling import (
    filter_logits,
    gumbel_noise,
    make_generator,
    sample_tokens,
    token_log_probs,
)


def reference_nucleus(logits: torch.Tensor, top_p: float) -> set[int]:
    """Smallest set of most likely tokens whose probability reaches top_p (plain Python)."""
    probs = logits.softmax(-1).tolist()
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= top_p:
            break
    return kept


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 2  # (4, V=50)


def test_top_k_never_samples_outside_the_k_best(logits):
    gen = make_generator(0)
    allowed = logits.topk(5, dim=-1).indices  # (4, 5)
    for _ in range(200):
        tok = sample_tokens(logits, temperature=1.5, top_k=5, generator=gen)
        assert (allowed == tok[:, None]).any(dim=1).all()


def test_top_p_never_samples_outside_the_nucleus(logits):
    gen = make_generator(1)
    nuclei = [reference_nucleus(row, 0.6) for row in logits]
    seen = [set() for _ in nuclei]
    for _ in range(300):
        tok = sample_tokens(logits, temperature=1.0, top_p=0.6, generator=gen)
        for b, t in enumerate(tok.tolist()):
            assert t in nuclei[b]
            seen[b].add(t)
    assert any(len(s) > 1 for s in seen)  # it does sample, not only the argmax


def test_filter_logits_matches_reference_sets(logits):
    kept = filter_logits(logits, top_k=10, top_p=0.5).isfinite()
    for b in range(4):
        topk = logits[b].topk(10)
        restricted = torch.full_like(logits[b], float("-inf")).scatter(0, topk.indices, topk.values)
        assert set(kept[b].nonzero().flatten().tolist()) == reference_nucleus(restricted, 0.5)
    assert torch.equal(filter_logits(logits), logits)


def test_temperature_zero_is_argmax_and_temperature_sharpens(logits):
    assert torch.equal(sample_tokens(logits, temperature=0.0), logits.argmax(-1))
    gen = make_generator(0)
    tokens = sample_tokens(logits.repeat(2000, 1), 0.5, generator=gen).view(2000, 4)
    hit_rate = (tokens == logits.argmax(-1)).float().mean(dim=0)
    expected = (logits / 0.5).softmax(-1).max(-1).values  # probability of the mode at T = 0.5
    assert torch.allclose(hit_rate, expected, atol=0.04)
    assert (expected > logits.softmax(-1).max(-1).values).all()


def test_sampled_frequencies_follow_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0, -30.0]])
    gen = make_generator(3)
    tokens = sample_tokens(logits.expand(20000, 5), generator=gen)
    freq = torch.bincount(tokens, minlength=5).float() / tokens.numel()
    assert torch.allclose(freq, logits[0].softmax(-1), atol=0.015)
    assert freq[4] == 0


def test_same_seed_same_tokens_different_seed_differs(logits):
    big = logits.repeat(8, 1)
    a = sample_tokens(big, generator=make_generator(7))
    b = sample_tokens(big, generator=make_generator(7))
    c = sample_tokens(big, generator=make_generator(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(gumbel_noise((3, 4), make_generator(1)), gumbel_noise((3, 4), make_generator(1)))


def test_bf16_logits_are_sampled_in_fp32(logits):
    tok = sample_tokens(logits.bfloat16(), temperature=0.0)
    assert torch.equal(tok, logits.bfloat16().float().argmax(-1))
    lp = token_log_probs(logits.bfloat16(), tok)
    assert lp.dtype == torch.float32


def test_token_log_probs_match_log_softmax(logits):
    tok = torch.tensor([0, 5, 49, 7])
    expected = logits.log_softmax(-1)[torch.arange(4), tok]
    assert torch.allclose(token_log_probs(logits, tok), expected, atol=1e-6)


def test_gumbel_noise_statistics():
    g = gumbel_noise((200000,), make_generator(0))
    assert abs(g.mean().item() - 0.5772) < 0.02  # Euler-Mascheroni constant
    assert g.isfinite().all()


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_k": -1}, "top_k must be >= 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
])
def test_bad_sampling_arguments(logits, kwargs, match):
    with pytest.raises(FourmError, match=match):
        sample_tokens(logits, **kwargs)
