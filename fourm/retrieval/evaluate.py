"""Retrieval metrics for paired data: query i's one positive is key i (e.g. caption i -> image i).

The rank of the positive is the number of keys scored above it, plus the keys with an equal score
that come before it (ties broken by key index, as a stable sort would), so results are exact and
deterministic. ``recall@k`` = fraction of queries whose positive has rank < k; chance is k / N.

    ranks = positive_ranks(query_emb, key_emb)            # (N,) long, 0 = retrieved first
    recall_at_k(query_emb, key_emb, ks=(1, 5, 10))        # {1: 0.31, 5: 0.62, 10: 0.75}
    report = evaluate_pair(query_emb, key_emb)            # recall, chance, median rank, MRR
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from fourm.errors import FourmError

DEFAULT_KS = (1, 5, 10)


def _check_pair(queries: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    queries, keys = torch.as_tensor(queries).float(), torch.as_tensor(keys).float()
    if queries.dim() != 2 or keys.dim() != 2 or queries.shape[1] != keys.shape[1]:
        raise FourmError(f"queries {tuple(queries.shape)} and keys {tuple(keys.shape)} must be (N, D) with the same D")
    if queries.shape[0] != keys.shape[0] or queries.shape[0] == 0:
        raise FourmError(
            f"paired retrieval needs as many queries as keys (query i's positive is key i), got "
            f"{queries.shape[0]} and {keys.shape[0]}"
        )
    return queries, keys


def positive_ranks(queries: Tensor, keys: Tensor, batch_size: int = 1024) -> Tensor:
    """Rank (0 = first) of key i among all keys for query i, by inner product: (N,) long."""
    queries, keys = _check_pair(queries, keys)
    n = keys.shape[0]
    ranks = []
    for start in range(0, n, batch_size):
        scores = queries[start : start + batch_size] @ keys.T  # (b, N)
        rows = torch.arange(scores.shape[0])
        cols = rows + start
        positive = scores[rows, cols][:, None]  # (b, 1)
        before = torch.arange(n)[None, :] < cols[:, None]  # key index below the positive's
        ranks.append(((scores > positive) | ((scores == positive) & before)).sum(dim=1))
    return torch.cat(ranks)


def recall_at_k(queries: Tensor, keys: Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """{k: fraction of queries whose positive key is among the top k}."""
    ks = _check_ks(ks)
    ranks = positive_ranks(queries, keys)
    return {k: int((ranks < k).sum()) / ranks.numel() for k in ks}


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise FourmError(f"recall cut-offs must be integers >= 1, got {list(ks)}")
    return ks


def evaluate_pair(queries: Tensor, keys: Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """recall@k, chance level k/N, median rank (1-based) and mean reciprocal rank of paired embeddings."""
    ks = _check_ks(ks)
    ranks = positive_ranks(queries, keys)
    n = int(ranks.numel())
    return {
        "num": n,
        "recall": {f"@{k}": int((ranks < k).sum()) / n for k in ks},
        "chance": {f"@{k}": min(k, n) / n for k in ks},
        "median_rank": float((ranks + 1).float().median()),
        "mrr": float((1.0 / (ranks + 1).float()).mean()),
    }


def format_report(name: str, report: dict[str, Any]) -> str:
    """One line: ``name  R@1 0.310 (chance 0.002)  R@5 ...  median rank 3  MRR 0.45``."""
    parts = [f"R{k} {v:.3f} (chance {report['chance'][k]:.3f})" for k, v in report["recall"].items()]
    return f"{name:<24} " + "  ".join(parts) + f"  median rank {report['median_rank']:g}  MRR {report['mrr']:.3f}"
