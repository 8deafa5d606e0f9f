"""Quantisers: straight-through gradients, loss terms, EMA, restarts, k-means, FSQ grid, Gumbel, autocast."""

import copy
import math

import pytest
import torch

from fourm.errors import FourmError
from tokenizers_zoo.quantizers import (
    FSQ,
    CodebookUsage,
    GumbelQuantizer,
    QuantizerConfig,
    VectorQuantizer,
    build_quantizer,
    exponential_temperature,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def set_codes(vq: VectorQuantizer, codes: torch.Tensor) -> None:
    with torch.no_grad():
        vq.embedding.data.copy_(codes)


# ---- VectorQuantizer --------------------------------------------------------------------------


def test_vq_straight_through_gradient():
    vq = VectorQuantizer(dim=6, codebook_size=16)
    z = torch.randn(2, 6, 3, 5, requires_grad=True)
    out = vq(z)
    upstream = torch.randn_like(out.z_q)
    (out.z_q * upstream).sum().backward()  # d loss / d z_q == upstream
    torch.testing.assert_close(z.grad, upstream, rtol=0, atol=0)


def test_vq_loss_terms_hand_computed_and_routed():
    codes = torch.tensor([[0.0, 0.0], [2.0, 2.0], [-3.0, 1.0]])
    z_vals = torch.tensor([[0.5, -0.5], [1.5, 2.5], [-2.0, 1.0]])  # nearest: codes 0, 1, 2
    q_expected = codes[[0, 1, 2]]
    sq = ((z_vals - q_expected) ** 2).mean()  # 0.25*4 + ... over 6 elements

    grads = {}
    for beta in (0.0, 0.25, 1.0):
        vq = VectorQuantizer(dim=2, codebook_size=3, beta=beta)
        set_codes(vq, codes)
        z = z_vals.t()[None].clone().requires_grad_(True)  # (1, 2, 3): three positions
        out = vq(z)
        assert out.indices.tolist() == [[0, 1, 2]]
        torch.testing.assert_close(out.loss, (1 + beta) * sq)
        out.loss.backward()
        grads[beta] = (z.grad[0].t().clone(), vq.embedding.grad.clone())
        # commitment term only reaches the encoder output: 2 * beta * (z - e) / numel
        torch.testing.assert_close(grads[beta][0], 2 * beta * (z_vals - q_expected) / 6)
        # codebook term only reaches the codebook: 2 * (e - z) / numel, independent of beta
        torch.testing.assert_close(grads[beta][1], 2 * (q_expected - z_vals) / 6)
    assert grads[0.0][0].abs().sum() == 0


def test_vq_ema_moves_codes_to_cluster_means_and_keeps_unassigned():
    vq = VectorQuantizer(dim=2, codebook_size=4, use_ema=True, ema_decay=0.0)
    codes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
    vq.embedding.copy_(codes)
    vectors = torch.cat([torch.randn(20, 2) * 0.5, torch.randn(12, 2) * 0.5 + torch.tensor([10.0, 0.0])])
    z = vectors.t()[None, :, :, None]  # (1, 2, 32, 1)
    out = vq.train()(z)
    assigned = out.indices.flatten()
    assert set(assigned.tolist()) == {0, 1}
    for k in (0, 1):
        torch.testing.assert_close(vq.embedding[k], vectors[assigned == k].mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(vq.embedding[2:], codes[2:], atol=0, rtol=0)
    assert out.metrics["codebook_loss"] == 0


def test_vq_dead_code_restart_replaces_exactly_dead_codes():
    vq = VectorQuantizer(dim=3, codebook_size=8, dead_code_steps=1)
    codes = torch.cat([torch.eye(3), -torch.ones(1, 3), torch.full((4, 3), 100.0)])  # 4..7 far away
    set_codes(vq, codes)
    vq.train()
    vq(torch.randn(2, 3, 4, 4) * 0.1)
    dead = vq.dead_mask()
    assert dead[4:].all() and int(dead.sum()) >= 4
    before = vq.embedding.detach().clone()
    z2 = torch.randn(2, 3, 4, 4)
    out = vq(z2)
    batch_vectors = z2.movedim(1, -1).reshape(-1, 3)
    after = vq.embedding.detach()
    torch.testing.assert_close(after[~dead], before[~dead], atol=0, rtol=0)
    for k in torch.nonzero(dead).flatten().tolist():
        distances = (batch_vectors - after[k]).abs().sum(1)
        assert distances.min() == 0, f"code {k} was not replaced by a batch vector"
    assert len({tuple(after[k].tolist()) for k in torch.nonzero(dead).flatten().tolist()}) == int(dead.sum())
    assert out.metrics["dead_codes"] <= 8


def test_vq_ema_threshold_marks_low_count_codes_dead():
    vq = VectorQuantizer(dim=2, codebook_size=4, use_ema=True, ema_decay=0.5, dead_code_threshold=1.0)
    vq.embedding.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [50.0, 50.0], [-50.0, 50.0]]))
    z = torch.cat([torch.zeros(2, 5), torch.full((2, 5), 5.0)], dim=1)[
        None
    ]  # 5 vectors at each of codes 0, 1
    vq.train()(z)
    assert vq.dead_mask().tolist() == [False, False, True, True]
    torch.testing.assert_close(vq.ema_counts(), torch.tensor([5.0, 5.0, 0.0, 0.0]))


def quantisation_error(vq: VectorQuantizer, z: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((vq.eval()(z).z_q - z) ** 2).mean())


def test_vq_kmeans_init_reduces_quantisation_error():
    centers = torch.randn(16, 8) * 3
    vectors = centers[torch.randint(0, 16, (2048,))] + 0.1 * torch.randn(2048, 8)
    z = vectors.t()[None, :, :, None]  # (1, 8, 2048, 1)
    random_vq = VectorQuantizer(dim=8, codebook_size=16)
    kmeans_vq = VectorQuantizer(dim=8, codebook_size=16, kmeans_init=True)
    random_vq.train()(z)
    kmeans_vq.train()(z)
    assert bool(kmeans_vq.initialized)
    err_random, err_kmeans = quantisation_error(random_vq, z), quantisation_error(kmeans_vq, z)
    assert err_kmeans < 0.25 * err_random


def test_vq_l2_normalised_codes_have_unit_norm():
    vq = VectorQuantizer(dim=5, codebook_size=12, l2_normalize=True, kmeans_init=True)
    z = torch.randn(4, 5, 6) * 3
    out = vq.train()(z)
    torch.testing.assert_close(out.z_q.norm(dim=1), torch.ones(4, 6))
    latents = vq.indices_to_latents(torch.arange(12)[None])  # (1, 5, 12)
    torch.testing.assert_close(latents.norm(dim=1), torch.ones(1, 12))


def test_vq_low_dim_codes_project_in_and_out():
    vq = VectorQuantizer(dim=16, codebook_size=8, code_dim=4)
    assert vq.embedding.shape == (8, 4)
    z = torch.randn(2, 16, 3, requires_grad=True)
    out = vq(z)
    assert out.z_q.shape == z.shape
    out.z_q.sum().backward()
    assert vq.project_in.weight.grad.abs().sum() > 0 and z.grad.abs().sum() > 0


# ---- FSQ --------------------------------------------------------------------------------------


def test_fsq_codebook_is_a_bijection_on_the_grid():
    levels = (8, 5, 5, 5)
    fsq = FSQ(levels)
    assert fsq.codebook_size == math.prod(levels) == 1000
    indices = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(indices)  # (1000, 4)
    assert torch.unique(codes, dim=0).shape[0] == 1000
    for ch, level in enumerate(levels):
        assert torch.unique(codes[:, ch]).numel() == level
    assert codes.abs().max() <= 1
    assert torch.equal(fsq.codes_to_indices(codes), indices)


def test_fsq_round_trip_and_extremes():
    fsq = FSQ((8, 5, 5, 5))
    z = torch.randn(3, 4, 7, 7) * 2
    out = fsq(z)
    assert out.loss == 0
    latents = fsq.indices_to_latents(out.indices)
    torch.testing.assert_close(latents, out.z_q, atol=1e-6, rtol=0)
    assert torch.equal(fsq.codes_to_indices(latents.movedim(1, -1)), out.indices)
    assert fsq(torch.full((1, 4, 1), 100.0)).indices.item() == 999  # every channel at its top level
    assert fsq(torch.full((1, 4, 1), -100.0)).indices.item() == 0


def test_fsq_with_projection_passes_gradients():
    fsq = FSQ((5, 5, 5), dim=12)
    z = torch.randn(2, 12, 4, requires_grad=True)
    out = fsq(z)
    assert out.z_q.shape == z.shape and out.indices.shape == (2, 4)
    out.z_q.pow(2).sum().backward()
    assert z.grad.abs().sum() > 0


# ---- Gumbel -----------------------------------------------------------------------------------


def test_gumbel_hard_outputs_are_one_hot():
    gq = GumbelQuantizer(dim=6, codebook_size=6, hard=True, temperature=0.5)
    with torch.no_grad():
        gq.embedding.copy_(torch.eye(6))  # z_q channels == the sampled one-hot weights
    out = gq.train()(torch.randn(2, 6, 5, 5))
    assert set(out.z_q.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(out.z_q.sum(1), torch.ones(2, 5, 5))
    assert torch.equal(out.z_q.argmax(1), out.indices)


def test_gumbel_soft_weights_are_a_distribution():
    gq = GumbelQuantizer(dim=6, codebook_size=6, hard=False)
    with torch.no_grad():
        gq.embedding.copy_(torch.eye(6))
    out = gq.train()(torch.randn(2, 6, 5))
    torch.testing.assert_close(out.z_q.sum(1), torch.ones(2, 5))
    assert (out.z_q < 1).all() and (out.z_q > 0).all()


def test_gumbel_kl_to_uniform():
    gq = GumbelQuantizer(dim=3, codebook_size=2, kl_weight=1.0).requires_grad_(False)
    with torch.no_grad():
        gq.to_logits.weight.zero_()
        gq.to_logits.bias.zero_()
    out = gq.eval()(torch.randn(2, 3, 4))
    assert abs(float(out.loss)) < 1e-6 and abs(float(out.metrics["kl"])) < 1e-6
    with torch.no_grad():
        gq.to_logits.bias.copy_(torch.log(torch.tensor([1.0, 3.0])))  # q = (1/4, 3/4)
    out = gq(torch.randn(2, 3, 4))
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert abs(float(out.loss) - expected) < 1e-6


def test_gumbel_eval_is_deterministic_argmax():
    gq = GumbelQuantizer(dim=4, codebook_size=10).eval()
    z = torch.randn(2, 4, 3, 3)
    out = gq(z)
    assert torch.equal(out.indices, gq.logits(z).argmax(1))
    assert torch.equal(gq(z).z_q, out.z_q)


def test_gumbel_temperature_schedule():
    assert exponential_temperature(0) == 1.0
    assert exponential_temperature(50, anneal_steps=100) == pytest.approx(0.25)
    assert exponential_temperature(100, anneal_steps=100) == pytest.approx(1 / 16)
    assert exponential_temperature(10_000, anneal_steps=100) == pytest.approx(1 / 16)
    gq = GumbelQuantizer(dim=2, codebook_size=4)
    gq.set_temperature(0.125)
    assert gq(torch.randn(1, 2, 3)).metrics["temperature"] == 0.125
    with pytest.raises(FourmError, match="temperature"):
        gq.set_temperature(0.0)


# ---- shared behaviour -------------------------------------------------------------------------

QUANTIZER_FACTORIES = {
    "vq": lambda: VectorQuantizer(dim=8, codebook_size=32),
    "vq_ema_l2_lowdim": lambda: VectorQuantizer(
        dim=8,
        codebook_size=32,
        code_dim=4,
        use_ema=True,
        l2_normalize=True,
        kmeans_init=True,
        dead_code_steps=2,
    ),
    "fsq": lambda: FSQ((8, 5, 5, 5)),
    "fsq_projected": lambda: FSQ((7, 5, 5), dim=8),
    "gumbel_hard": lambda: GumbelQuantizer(dim=8, codebook_size=32, hard=True),
}


@pytest.mark.parametrize("name", list(QUANTIZER_FACTORIES))
def test_indices_to_latents_matches_forward(name):
    q = QUANTIZER_FACTORIES[name]()
    z = torch.randn(2, q.dim, 4, 3)
    for _ in range(3):  # training forwards (k-means init, restarts, EMA) then check
        out = q.train()(z)
    if not getattr(q, "use_ema", False):  # EMA moves the codes after quantising: z_q used the old ones
        torch.testing.assert_close(q.indices_to_latents(out.indices), out.z_q, atol=1e-5, rtol=1e-5)
    out = q.eval()(z)
    torch.testing.assert_close(q.indices_to_latents(out.indices), out.z_q, atol=1e-5, rtol=1e-5)
    assert out.indices.dtype == torch.long and out.indices.shape == (2, 4, 3)
    assert out.loss.dtype == torch.float32 and out.loss.dim() == 0


@pytest.mark.parametrize("name", list(QUANTIZER_FACTORIES))
@pytest.mark.parametrize("training", [False, True])
def test_bf16_autocast_does_not_change_quantisation(name, training):
    q = QUANTIZER_FACTORIES[name]()
    q.train(training)
    twin = copy.deepcopy(q)
    z = torch.randn(2, q.dim, 5, 5)
    torch.manual_seed(1)  # same k-means / restart / Gumbel draws for both copies
    plain = q(z)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = twin(z)
    assert torch.equal(plain.indices, auto.indices)
    assert torch.equal(plain.loss, auto.loss)
    assert auto.z_q.dtype == torch.float32 and torch.equal(plain.z_q, auto.z_q)
    assert q(z.bfloat16()).z_q.dtype == torch.bfloat16


def test_codebook_usage_accumulator():
    usage = CodebookUsage(8)
    usage.update(torch.tensor([0, 1, 1, 2]))
    usage.update(torch.tensor([[3, 3], [0, 0]]))
    assert usage.counts.tolist() == [3, 2, 1, 2, 0, 0, 0, 0]
    assert usage.usage() == 0.5 and usage.dead_codes() == 4 and usage.total() == 8
    p = torch.tensor([3, 2, 1, 2]) / 8
    assert usage.perplexity() == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-5)
    usage.reset()
    usage.update(torch.arange(8))
    assert usage.perplexity() == pytest.approx(8.0, rel=1e-5) and usage.dead_codes() == 0
    assert "counts" not in usage.state_dict()


def test_vq_tracks_running_usage_and_batch_metrics():
    vq = VectorQuantizer(dim=2, codebook_size=4).eval()
    set_codes(vq, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    z = torch.tensor([[0.0, 0.1], [0.9, 0.0], [0.1, 0.0]]).t()[None]  # codes 0, 1, 0
    out = vq(z)
    assert out.metrics["usage"] == 0.5
    assert float(out.metrics["perplexity"]) == pytest.approx(
        math.exp(-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3))
    )
    vq(torch.tensor([[0.0, 1.0]]).t()[None])
    assert vq.usage.counts.tolist() == [2, 1, 1, 0] and vq.usage.usage() == 0.75


def test_build_quantizer_from_config():
    assert isinstance(build_quantizer({"kind": "fsq", "dim": None, "levels": [8, 8]}), FSQ)
    assert build_quantizer(QuantizerConfig(kind="fsq", dim=16)).dim == 16
    vq = build_quantizer({"kind": "vq", "dim": 8, "codebook_size": 64, "code_dim": 4, "use_ema": True})
    assert isinstance(vq, VectorQuantizer) and vq.codebook_size == 64 and vq.code_dim == 4 and vq.use_ema
    gq = build_quantizer({"kind": "gumbel", "dim": 8, "codebook_size": 16, "hard": True})
    assert isinstance(gq, GumbelQuantizer) and gq.hard
    with pytest.raises(FourmError, match="kind"):
        build_quantizer({"kind": "rvq"})
    with pytest.raises(FourmError, match="codebook_sise"):
        build_quantizer({"kind": "vq", "codebook_sise": 3})
    with pytest.raises(FourmError, match="levels"):
        build_quantizer({"kind": "fsq", "levels": [8, 1]})


def test_bad_inputs_raise_fourm_errors():
    vq = VectorQuantizer(dim=4, codebook_size=8)
    with pytest.raises(FourmError, match=r"\(B, 4, \.\.\.\)"):
        vq(torch.randn(2, 3, 5))
    with pytest.raises(FourmError, match="out of range"):
        vq.indices_to_latents(torch.tensor([[8]]))
    with pytest.raises(FourmError, match="integer"):
        FSQ().indices_to_latents(torch.tensor([[0.5]]))
