"""Best-of-n reranking by the reverse task: the log-likelihood against token-by-token references,
the per-sample choice, and generate_chained's candidates (draw order, hidden inputs, errors)."""

import pytest
import torch
from gen_testing import random_tokens, toy_model

import fourm.generation.chain as chain_module
from fourm.errors import FourmError
from fourm.generation import (
    GenerationPlan,
    GenerationTarget,
    GivenTokens,
    ParallelDecoder,
    SequenceDecoder,
    encoder_inputs,
    generate_chained,
    normalize_conditions,
)
from fourm.generation.rerank import choose, log_likelihood


@pytest.fixture(scope="module")
def model():
    return toy_model()


def test_sequence_log_likelihood_matches_token_by_token_decoding(model):
    depth = random_tokens("depth", batch=2, seed=1)
    caption = torch.tensor([[5, 9, 4, 2, 0, 0], [7, 3, 2, 0, 0, 0]])  # [EOS] = 2, [PAD] = 0
    scored = GivenTokens.sequence(caption, eos=2, pad=0)
    conditions = normalize_conditions(model.config, {"depth": depth}, 2)
    with torch.no_grad():
        got = log_likelihood(model, conditions, "caption", scored, sos=1)
        decoder = SequenceDecoder(model, "caption", encoder_inputs(model.config, conditions), [1.0], use_cache=False)
        expected = torch.zeros(2)
        previous = torch.ones(2, 1, dtype=torch.long)  # [SOS]
        for i in range(caption.shape[1]):
            logp = decoder(previous, torch.full((2, 1), i)).log_softmax(-1)[:, 0]  # (2, V)
            expected += torch.where(scored.valid[:, i], logp.gather(1, caption[:, i : i + 1])[:, 0], 0.0)
            previous = caption[:, i : i + 1]
    assert torch.allclose(got, expected, atol=1e-4)
    assert (got < 0).all()


def test_image_log_likelihood_is_the_first_maskgit_step(model):
    rgb = random_tokens("rgb", batch=3, seed=2)
    conditions = normalize_conditions(model.config, {"depth": random_tokens("depth", batch=3)}, 3)
    with torch.no_grad():
        got = log_likelihood(model, conditions, "rgb", GivenTokens.at(rgb), sos=1)
        n = rgb.shape[1]
        logits = ParallelDecoder(model, "rgb", encoder_inputs(model.config, conditions), [1.0])(
            torch.zeros_like(rgb), torch.zeros_like(rgb, dtype=torch.bool),
            torch.arange(n).expand(3, n), torch.ones(3, n, dtype=torch.bool),
        )  # fmt: skip
    expected = logits.log_softmax(-1).gather(-1, rgb[..., None])[..., 0].sum(1)
    assert torch.allclose(got, expected, atol=1e-3)
    with pytest.raises(FourmError, match="given itself"):
        log_likelihood(model, {"rgb": GivenTokens.at(rgb)}, "rgb", GivenTokens.at(rgb), sos=1)


def test_choose_takes_each_rows_best_candidate_and_pads():
    a = GivenTokens.at(torch.tensor([[1, 2], [3, 4]]))
    b = GivenTokens.at(torch.tensor([[5, 6, 7], [8, 9, 10]]))
    chosen, best = choose([a, b], torch.tensor([[0.0, -1.0], [-5.0, 2.0]]), pad=0)
    assert best.tolist() == [0, 1]
    assert chosen.tokens.tolist() == [[1, 2, 0], [8, 9, 10]]
    assert chosen.valid.tolist() == [[True, True, False], [True, True, True]]
    with pytest.raises(FourmError, match="2 candidates but 3"):
        choose([a, b], torch.zeros(3, 2))


def _scripted_scores(monkeypatch, pick: int, seen: list):
    """Scores that make draw ``pick`` win; records the conditions each scoring call got."""
    calls = {"n": 0}

    def fake(model, conditions, name, scored, sos):
        seen.append((name, sorted(conditions)))
        k, calls["n"] = calls["n"], calls["n"] + 1
        return torch.full((scored.batch_size,), 10.0 if k == pick else -float(k))

    monkeypatch.setattr(chain_module, "log_likelihood", fake)


def test_candidates_keep_the_best_scored_draw(model, monkeypatch):
    depth = random_tokens("depth")
    single = GenerationPlan(targets=[GenerationTarget("caption", scheme="ar", temperature=1.0)])
    plan = GenerationPlan(targets=[GenerationTarget("caption", scheme="ar", temperature=1.0, candidates=3)])
    first = generate_chained(model, {"depth": depth}, single, num_samples=4, seed=0)["caption"]
    seen: list = []
    _scripted_scores(monkeypatch, 0, seen)
    kept = generate_chained(model, {"depth": depth}, plan, num_samples=4, seed=0)["caption"]
    assert torch.equal(kept[:, : first.shape[1]], first)  # draw 0 is the draw a single sample makes
    assert [name for name, _ in seen] == ["depth"] * 3  # default: the given condition scores each draw
    assert seen[0][1] == ["caption"]  # scored without itself, with the draw
    seen.clear()
    _scripted_scores(monkeypatch, 2, seen)
    last = generate_chained(model, {"depth": depth}, plan, num_samples=4, seed=0)["caption"]
    assert not torch.equal(last[:, : first.shape[1]], first)


def test_rerank_by_scores_each_condition_from_the_draw_alone(model, monkeypatch):
    seen: list = []
    _scripted_scores(monkeypatch, 0, seen)
    plan = GenerationPlan(targets=[GenerationTarget("rgb", steps=2, candidates=2, rerank_by=["depth"])])
    conditions = {"depth": random_tokens("depth"), "caption": torch.tensor([5, 6, 2])}
    generate_chained(model, conditions, plan, num_samples=2, seed=0)
    assert seen == [("depth", ["rgb"])] * 2  # only depth scored, from the rgb draw (the caption would explain it)


def test_candidate_errors(model):
    with pytest.raises(FourmError, match="candidates must be in 1..64"):
        GenerationTarget("rgb", candidates=0)
    with pytest.raises(FourmError, match="cannot hold the target itself"):
        GenerationTarget("rgb", candidates=2, rerank_by=["rgb"])
    with pytest.raises(FourmError, match="need something to rerank by"):
        generate_chained(model, {}, GenerationPlan(targets=[GenerationTarget("rgb", steps=1, candidates=2)]), seed=0)
    with pytest.raises(FourmError, match="'depth' is neither given nor generated"):
        plan = GenerationPlan(targets=[GenerationTarget("rgb", steps=1, candidates=2, rerank_by=["depth"])])
        generate_chained(model, {"caption": torch.tensor([5, 2])}, plan, seed=0)
