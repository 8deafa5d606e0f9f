"""Recall@k and positive ranks against a naive reference loop."""

import pytest
import torch

from fourm.errors import FourmError
from fourm.retrieval.evaluate import evaluate_pair, format_report, positive_ranks, recall_at_k


def naive_recall(queries, keys, ks):
    """For each query: keys sorted by score (stable: ties by key index), is key i in the first k?"""
    hits = {k: 0 for k in ks}
    q, kk = queries.tolist(), keys.tolist()
    for i, qv in enumerate(q):
        scores = [sum(a * b for a, b in zip(qv, kv)) for kv in kk]
        order = sorted(range(len(kk)), key=lambda j: -scores[j])  # sorted() is stable
        for k in ks:
            hits[k] += i in order[:k]
    return {k: hits[k] / len(q) for k in ks}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recall_matches_naive_loop(seed):
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(40, 8, generator=g)
    queries = keys + 1.5 * torch.randn(40, 8, generator=g)  # noisy: positives are often but not always first
    ks = (1, 3, 5, 10)
    got = recall_at_k(queries, keys, ks)
    want = naive_recall(queries, keys, ks)
    assert got == pytest.approx(want, abs=0)
    assert 0.0 < got[1] < 1.0  # the test exercises both hits and misses


def test_ties_are_broken_by_key_index():
    # integer-valued embeddings: scores are exact, so duplicate keys tie exactly
    keys = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    queries = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    ranks = positive_ranks(queries, keys)
    assert ranks.tolist() == [0, 1, 0, 2]  # key 3 ties with keys 0 and 1, which come first
    assert recall_at_k(queries, keys, (1, 2, 3)) == naive_recall(queries, keys, (1, 2, 3))


def test_batched_ranks_equal_one_batch():
    g = torch.Generator().manual_seed(3)
    keys, queries = torch.randn(37, 5, generator=g), torch.randn(37, 5, generator=g)
    assert torch.equal(positive_ranks(queries, keys, batch_size=4), positive_ranks(queries, keys, batch_size=1000))


def test_evaluate_pair_report():
    keys = torch.eye(4)
    report = evaluate_pair(keys, keys, ks=(1, 5))
    assert report["recall"] == {"@1": 1.0, "@5": 1.0}
    assert report["chance"] == {"@1": 0.25, "@5": 1.0}  # k/N, capped at 1
    assert report["median_rank"] == 1 and report["mrr"] == 1.0
    assert "R@1 1.000 (chance 0.250)" in format_report("x", report)
    reversed_keys = torch.eye(4).flip(0)  # query i's best key is 3 - i
    assert evaluate_pair(keys, reversed_keys)["recall"]["@1"] == 0.0


def test_errors():
    with pytest.raises(FourmError, match="as many queries as keys"):
        recall_at_k(torch.randn(3, 4), torch.randn(5, 4))
    with pytest.raises(FourmError, match="same D"):
        recall_at_k(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(FourmError, match=">= 1"):
        recall_at_k(torch.randn(3, 4), torch.randn(3, 4), ks=(0,))
