"""Generalized-CCA alignment: against a textbook CCA, its invariances, retrieval on synthetic paired
views, storage, the aligned pooled embedder and errors."""

import pytest
import torch
import torch.nn.functional as F

from fourm.errors import FourmError
from fourm.retrieval.align import LinearAlignment, fit_gcca
from fourm.retrieval.embed import PooledEmbedder
from fourm.retrieval.evaluate import recall_at_k
from fourm.retrieval.index import EmbeddingIndex
from fourm.retrieval.items import pack_items

CAPTIONS = ["a small red circle", "a large blue square is to the left of a small green star", "one pink hexagon"]


def caption_ids(pipe, text):
    return pipe.tokenize("caption", [text])[0]


def rgb_ids(seed, n=16):
    return torch.randint(64, (n,), generator=torch.Generator().manual_seed(seed))


def views(n=2000, shared=3, dims=(12, 9, 10), noise=0.5, seed=0):
    """Paired views x_m = z A_m + own noise (N, D_m), sharing a latent z (N, shared)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, shared, generator=g, dtype=torch.float64)
    out = []
    for d in dims:
        a = torch.randn(shared, d, generator=g, dtype=torch.float64)
        out.append(z @ a + noise * torch.randn(n, d, generator=g, dtype=torch.float64) + 3.0)
    return out


def textbook_cca(x, y):
    """Canonical correlations: square roots of the eigenvalues of Cxx^-1 Cxy Cyy^-1 Cyx, descending."""
    x, y = x - x.mean(0), y - y.mean(0)
    n = x.shape[0]
    cxx, cyy, cxy = x.T @ x / n, y.T @ y / n, x.T @ y / n
    m = torch.linalg.solve(cxx, cxy) @ torch.linalg.solve(cyy, cxy.T)
    return torch.linalg.eigvals(m).real.clamp(min=0).sqrt().sort(descending=True).values


def test_two_views_match_textbook_cca():
    x, y = views(dims=(12, 9))[:2]
    align = fit_gcca({"a": x, "b": y}, dim=5, ridge=0.0)
    want = textbook_cca(x, y)[:5].float()
    assert torch.allclose(align.correlations, want, atol=1e-4)
    assert align.correlations[2] > 0.8 > 0.2 > align.correlations[3]  # 3 shared directions, then noise


def test_variates_are_white_and_correlated_as_reported():
    x, y = views(dims=(12, 9))[:2]
    align = LinearAlignment(**{**fit_gcca({"a": x, "b": y}, dim=4, ridge=0.0).__dict__, "power": 0.0})
    u, v = align.project("a", x.float()), align.project("b", y.float())  # (N, 4) each
    n = u.shape[0]
    assert torch.allclose(u.T @ u / n, torch.eye(4), atol=1e-3)  # unit variance, uncorrelated
    assert torch.allclose(v.T @ v / n, torch.eye(4), atol=1e-3)
    assert torch.allclose((u * v).mean(0), align.correlations, atol=1e-3)  # paired variates correlate as reported


def test_correlation_weights():
    x, y = views(dims=(12, 9))[:2]
    plain = fit_gcca({"a": x, "b": y}, dim=4, ridge=0.0, power=0.0)
    weighted = fit_gcca({"a": x, "b": y}, dim=4, ridge=0.0, power=2.0)
    assert torch.allclose(weighted.project("a", x[:5].float()), plain.project("a", x[:5].float()) * plain.correlations**2,
                          atol=1e-5)


def test_invariant_to_invertible_linear_maps_of_a_view():
    x, y = views(dims=(12, 9))[:2]
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(12, 12, generator=g, dtype=torch.float64) + 3 * torch.eye(12, dtype=torch.float64)
    a = fit_gcca({"a": x, "b": y}, dim=3, ridge=0.0)
    b = fit_gcca({"a": x @ mix + 5.0, "b": y}, dim=3, ridge=0.0)
    assert torch.allclose(a.correlations, b.correlations, atol=1e-5)
    # same variates up to the sign of each canonical direction
    ua, ub = a.project("a", x.float()), b.project("a", (x @ mix + 5.0).float())
    assert torch.allclose(ua.abs(), ub.abs(), atol=1e-3)


def test_three_views_find_the_shared_latent():
    xs = views(shared=2, dims=(12, 9, 10), noise=0.3)
    align = fit_gcca(dict(zip("abc", xs)), dim=4, ridge=0.0)
    assert align.correlations[1] > 0.9 and align.correlations[2] < 0.2
    # identical views correlate perfectly
    same = fit_gcca({"a": xs[0], "b": xs[0].clone(), "c": xs[0].clone()}, dim=3, ridge=0.0)
    assert torch.allclose(same.correlations, torch.ones(3), atol=1e-4)


def test_aligned_retrieval_pairs_views_that_raw_features_cannot():
    x, y = views(n=1200, shared=6, dims=(16, 16), noise=0.1, seed=3)
    train, test = slice(0, 1000), slice(1000, 1200)
    align = fit_gcca({"a": x[train], "b": y[train]}, dim=6)
    q = F.normalize(align.project("a", x[test].float()), dim=-1)
    k = F.normalize(align.project("b", y[test].float()), dim=-1)
    assert recall_at_k(q, k, [1])[1] > 0.8
    raw = recall_at_k(F.normalize(x[test].float(), dim=-1), F.normalize(y[test].float(), dim=-1), [1])[1]
    assert raw < 0.1


def test_tensors_round_trip_through_an_index(tmp_path):
    x, y = views(dims=(12, 9))[:2]
    align = fit_gcca({"cap": x, "rgb": y}, dim=3, power=2.0)
    EmbeddingIndex(torch.randn(4, 3), extra={"center.rgb": torch.zeros(9), **align.to_tensors()}).save(tmp_path / "i")
    back = LinearAlignment.from_tensors(EmbeddingIndex.load(tmp_path / "i").extra)
    assert back.modalities == ["cap", "rgb"] and back.power == 2.0
    assert torch.equal(back.project("rgb", y[:3].float()), align.project("rgb", y[:3].float()))
    assert LinearAlignment.from_tensors({"center.rgb": torch.zeros(9)}) is None


@pytest.mark.parametrize(
    "features, kwargs, message",
    [
        ({"a": torch.randn(50, 4)}, {}, "at least two modalities"),
        ({"a": torch.randn(50, 4), "b": torch.randn(40, 4)}, {"dim": 2}, "the same number of rows"),
        ({"a": torch.randn(50, 4), "b": torch.randn(50, 6)}, {"dim": 5}, r"dim must be in \[1, 4\]"),
        ({"a": torch.randn(5, 4), "b": torch.randn(5, 4)}, {"dim": 4}, "at least 8 paired samples"),
        ({"a": torch.full((50, 4), float("nan")), "b": torch.randn(50, 4)}, {"dim": 2}, "'a' features hold NaN"),
        ({"a": torch.randn(50, 4), "b": torch.randn(50, 4)}, {"dim": 2, "ridge": -1.0}, "ridge must be >= 0"),
    ],
)
def test_fit_errors(features, kwargs, message):
    with pytest.raises(FourmError, match=message):
        fit_gcca(features, **kwargs)


def paired_items(pipe, n=12):
    return [{"caption": caption_ids(pipe, CAPTIONS[i % 3] + " " + "big " * (i % 4)), "rgb": rgb_ids(i)} for i in range(n)]


def test_aligned_pooled_embedding_matches_reference(pipe):
    model = pipe.model
    emb = PooledEmbedder(model, autocast=False)
    align = emb.fit_alignment(paired_items(pipe), ["caption", "rgb"], dim=3)
    assert emb.dim == 3 and align.modalities == ["caption", "rgb"]
    item = {"rgb": rgb_ids(20), "caption": caption_ids(pipe, CAPTIONS[1])}
    parts = []
    for name in ("rgb", "caption"):  # each modality encoded on its own
        enc = pack_items(model.config, [{name: item[name]}])
        with torch.no_grad():
            out = model.encode(enc.tokens, enc.modality, enc.position, enc.valid)[0]
        parts.append(F.normalize(align.project(name, out[enc.valid[0]].mean(dim=0, keepdim=True)), dim=-1))
    want = F.normalize(parts[0] + parts[1], dim=-1)[0]
    both = emb([{"rgb": item["rgb"]}, {"caption": item["caption"]}])
    assert both.shape == (2, 3)
    assert torch.allclose(both, torch.cat(parts), atol=1e-5)  # single-modality items
    # a two-modality item is encoded jointly, so only its combination rule can be checked by hand
    sums, counts = emb.pools([{"rgb": item["rgb"]}, {"caption": item["caption"]}])
    joint = emb.combine(sums.sum(dim=0, keepdim=True), counts.sum(dim=0, keepdim=True))[0]
    assert torch.allclose(joint, want, atol=1e-5)
    assert emb.describe()["alignment"] == {"modalities": ["caption", "rgb"], "dim": 3, "power": 1.0}


def test_aligned_embedder_errors(pipe):
    emb = PooledEmbedder(pipe.model, autocast=False)
    with pytest.raises(FourmError, match="alignment item 0 lacks 'rgb'"):
        emb.fit_alignment([{"caption": caption_ids(pipe, CAPTIONS[0])}] * 8, ["caption", "rgb"], dim=2)
    emb.fit_alignment(paired_items(pipe), ["caption", "rgb"], dim=2)
    with pytest.raises(FourmError, match="the alignment has no map for modality 'depth'"):
        emb([{"depth": rgb_ids(0)}])
