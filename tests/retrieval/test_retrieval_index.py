"""EmbeddingIndex: faiss and torch backends agree, save/load round trip, errors."""

import pytest
import torch
import torch.nn.functional as F

from fourm.errors import FourmError
from fourm.retrieval.index import EmbeddingIndex, faiss_available


def _data(n=200, q=30, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1), F.normalize(torch.randn(q, d, generator=g), dim=1)


def test_torch_search_is_exact_top_k():
    keys, queries = _data()
    scores, rows = EmbeddingIndex(keys, backend="torch").search(queries, k=7)
    full = queries @ keys.T
    want = full.argsort(dim=1, descending=True)[:, :7]
    assert torch.equal(rows, want)
    assert torch.allclose(scores, full.gather(1, want))
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())  # best first


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
@pytest.mark.parametrize("k", [1, 5, 200, 500])
def test_faiss_and_torch_agree(k):
    keys, queries = _data(seed=k)
    s_t, r_t = EmbeddingIndex(keys, backend="torch").search(queries, k)
    s_f, r_f = EmbeddingIndex(keys, backend="faiss").search(queries, k)
    assert r_t.shape == r_f.shape == (30, min(k, 200))  # k is capped at the index size
    assert torch.equal(r_t, r_f)
    assert torch.allclose(s_t, s_f, atol=1e-5)


def test_auto_backend():
    keys, _ = _data(n=5)
    assert EmbeddingIndex(keys).backend == ("faiss" if faiss_available() else "torch")


def test_save_load_round_trip(tmp_path):
    keys, queries = _data(n=20)
    center = torch.randn(16)
    index = EmbeddingIndex(keys, ids=[f"s{i}" for i in range(20)], info={"method": "pooled", "rows": list(range(20))},
                           extra={"center.rgb": center}, backend="torch")
    index.save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(tmp_path / "idx", backend="torch")
    assert torch.equal(loaded.embeddings, index.embeddings)
    assert loaded.ids == index.ids and loaded.info == index.info
    assert torch.equal(loaded.extra["center.rgb"], center)
    assert torch.equal(loaded.search(queries, 3)[1], index.search(queries, 3)[1])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_errors(tmp_path):
    keys, _ = _data(n=4)
    index = EmbeddingIndex(keys, backend="torch")
    with pytest.raises(FourmError, match="dimension 3"):
        index.search(torch.randn(2, 3), 1)
    with pytest.raises(FourmError, match="k must be"):
        index.search(keys, 0)
    with pytest.raises(FourmError, match="NaN"):
        EmbeddingIndex(torch.full((2, 3), float("nan")))
    with pytest.raises(FourmError, match="2 ids for 4"):
        EmbeddingIndex(keys, ids=["a", "b"])
    with pytest.raises(FourmError, match="not a retrieval index"):
        EmbeddingIndex.load(tmp_path)
    with pytest.raises(FourmError, match="unknown index backend"):
        EmbeddingIndex(keys, backend="annoy")
