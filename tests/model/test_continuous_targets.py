"""Continuous modalities (value_dim > 0): value heads (regression, diffusion), inputs, packing,
save/load, generation (regress_vector), retrieval (RegressedEmbedder) and bad configs."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from fourm_testing import TOY_MODALITIES, pack, toy_config

from fourm.core.batch import MultimodalBatch
from fourm.data.masking import Masker, MaskingConfig, SequenceSpecialTokens, collate, make_rng
from fourm.data.token_dataset import (
    ModalityTokens,
    TokenDatasetInfo,
    TokenSamples,
    load_token_dataset,
    write_token_dataset,
)
from fourm.errors import FourmError
from fourm.generation.regress import regress_vector
from fourm.modalities import ModalitySpec
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.diffusion_head import DiffusionHead, cosine_betas
from fourm.retrieval import RegressedEmbedder
from fourm.training.data import apply_value_heads

C = 6
MODS = {
    **TOY_MODALITIES,
    "vec": ModalityConfig("vector", 1, 2, value_dim=C),  # 2 tokens of 6 values, linear head, cosine
    "vmse": ModalityConfig("vector", 1, 1, value_dim=4, value_loss="mse", input=False),
    "vdiff": ModalityConfig(
        "vector", 1, 1, value_dim=C, value_head="diffusion", value_scale=2.0, input=False
    ),
}
IDX = {name: i for i, name in enumerate(MODS)}


def model(seed: int = 0) -> FourM:
    torch.manual_seed(seed)
    return FourM(toy_config(modalities=MODS))


def batch(seed: int = 0) -> MultimodalBatch:
    """Sample 0: rgb + vec[0] in, vec[1] + depth + vmse out; sample 1: rgb in, both vec tokens + vdiff out."""
    s0 = {
        "enc": [(0, 0, 5), (IDX["vec"], 0, 0)],
        "dec": [(IDX["vec"], 1, 0, 0), (1, 2, 0, 3), (IDX["vmse"], 0, 0, 0)],
    }
    s1 = {"enc": [(0, 1, 7)], "dec": [(IDX["vec"], 0, 0, 0), (IDX["vec"], 1, 0, 0), (IDX["vdiff"], 0, 0, 0)]}
    b = pack([s0, s1], ne=3, nd=4)
    g = torch.Generator().manual_seed(seed)
    b.enc_values = torch.randn(2, 3, C, generator=g) * (b.enc_modality == IDX["vec"])[..., None]
    b.dec_values = torch.randn(2, 4, C, generator=g)
    return b


# ------------------------------------------------------------------------------------------ loss
def test_loss_matches_a_hand_computation():
    m, b = model(), batch()
    m.value_heads["vdiff"].samples_per_token = 1
    total, per = m.loss(b)
    with torch.no_grad():
        hidden = m._hidden(b)  # (B, Nd, D)
    m.requires_grad_(False)
    head = m.value_heads["vec"].proj
    cos = []
    for bi, ni in [(0, 0), (1, 0), (1, 1)]:  # the vec targets, row-major
        pred = head.weight @ hidden[bi, ni] + head.bias
        cos.append(1 - float(pred @ b.dec_values[bi, ni]) / float(pred.norm() * b.dec_values[bi, ni].norm()))
    assert per["vec"] == pytest.approx(sum(cos) / 3, rel=1e-5)
    mse_head = m.value_heads["vmse"].proj
    pred = mse_head.weight @ hidden[0, 2] + mse_head.bias
    assert per["vmse"] == pytest.approx(float(((pred - b.dec_values[0, 2, :4]) ** 2).sum()), rel=1e-5)
    ce = F.cross_entropy(m.head_weight("depth") @ hidden[0, 1], torch.tensor(3))
    assert per["depth"] == pytest.approx(float(ce), rel=1e-5)
    assert set(per) == {"depth", "vec", "vmse", "vdiff"}
    assert float(total.detach()) == pytest.approx(sum(per.values()) / 4, rel=1e-5)


def test_gradients_reach_the_heads_and_the_trunk():
    m, b = model(), batch()
    m.loss(b)[0].backward()
    for name in ("vec", "vmse", "vdiff"):
        grads = [p.grad for p in m.value_heads[name].parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    assert m.embeddings.value_embed["vec"].weight.grad.abs().sum() > 0  # the input projection
    trunk = [p for mod in (m.encoder, m.decoder) for p in mod.parameters()]
    assert all(p.grad is not None for p in trunk) and sum(float(p.grad.abs().sum()) for p in trunk) > 0


def test_value_only_loss_trains_the_encoder():
    """A batch whose only target is continuous still sends gradient into the encoder blocks."""
    m = model()
    b = pack([{"enc": [(0, 0, 5), (2, 0, 9)], "dec": [(IDX["vec"], 0, 0, 0)]}])
    b.dec_values = torch.randn(1, 1, C)
    m.loss(b)[0].backward()
    assert sum(float(p.grad.abs().sum()) for p in m.encoder.parameters() if p.grad is not None) > 0


def test_the_modality_as_input_changes_the_encoder_output():
    m, b = model().eval(), batch()
    args = (b.enc_tokens, b.enc_modality, b.enc_position, b.enc_valid)
    a = m.encode(*args, values=b.enc_values)
    other = b.enc_values.clone()
    other[0, 1] = torch.randn(C)
    c = m.encode(*args, values=other)
    assert not torch.allclose(a[0, 0], c[0, 0])  # the rgb token attends to the vector
    assert torch.equal(a[1], c[1])  # the other sample is untouched
    x = m.embeddings.encoder_input(*args, values=b.enc_values)
    proj = m.embeddings.value_embed["vec"]
    expected = (
        proj(b.enc_values[0, 1])
        + m.embeddings.pos_table[int(m.embeddings.pos_offsets[IDX["vec"]])]
        + m.embeddings.enc_modality[IDX["vec"]]
    )
    torch.testing.assert_close(x[0, 1], expected)
    with pytest.raises(FourmError, match="enc_values is None"):
        m.encode(*args)


# ------------------------------------------------------------------------------------------ packing
SP = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 19)))
ORDER = ["rgb", "vec"]


def _masker(inputs: dict, targets: dict) -> Masker:
    cfg = MaskingConfig.from_dict({
        "input_budget": 6, "target_budget": 6,
        "mixture": [{"input_alpha": 0.0, "input_alphas": inputs, "target_alpha": 0.0, "target_alphas": targets}],
    })  # fmt: skip
    return Masker(cfg, ORDER, {"rgb": "image", "vec": "vector"}, SP, value_dims={"vec": 3})


def _sample() -> dict:
    return {"rgb": torch.arange(16), "vec": torch.tensor([0.1, 0.2, 0.3, -1.0, -2.0, -3.0])}  # 2 tokens of 3


def test_masker_puts_the_values_at_their_slots_in_and_out():
    b = _masker({"rgb": 1.0}, {"vec": 1.0})(_sample(), make_rng(0, 0, 0))
    assert b.enc_values.shape == (1, 6, 3) and b.dec_values.shape == (1, 6, 3)
    assert not (b.enc_modality[b.enc_valid] == 1).any()
    assert b.enc_values.abs().sum() == 0
    dec = b.dec_valid[0] & (b.dec_modality[0] == 1)
    assert b.dec_position[0, dec].tolist() == [0, 1]
    torch.testing.assert_close(b.dec_values[0, dec], torch.tensor([[0.1, 0.2, 0.3], [-1.0, -2.0, -3.0]]))
    assert (b.dec_target[0, dec] == 0).all()

    b = _masker({"vec": 1.0}, {"rgb": 1.0})(_sample(), make_rng(0, 0, 1))
    enc = b.enc_valid[0] & (b.enc_modality[0] == 1)
    assert enc.sum() == 2 and b.dec_values.abs().sum() == 0
    torch.testing.assert_close(b.enc_values[0, enc], torch.tensor([[0.1, 0.2, 0.3], [-1.0, -2.0, -3.0]]))

    # split between the sides (all-to-all), and missing altogether
    b = _masker({"rgb": 1.0, "vec": 1.0}, {"rgb": 1.0, "vec": 1.0})(_sample(), make_rng(0, 0, 2))
    for side, pos in (("enc", "enc_position"), ("dec", "dec_position")):
        keep = getattr(b, f"{side}_valid")[0] & (getattr(b, f"{side}_modality")[0] == 1)
        vals = getattr(b, f"{side}_values")[0, keep]
        expected = torch.tensor([[0.1, 0.2, 0.3], [-1.0, -2.0, -3.0]])[getattr(b, pos)[0, keep]]
        torch.testing.assert_close(vals, expected)
    nothing = _masker({"rgb": 1.0}, {"vec": 1.0})({"rgb": torch.arange(16)}, make_rng(0, 0, 3))
    assert nothing.dec_values.abs().sum() == 0 and nothing.enc_values.shape == (1, 6, 3)
    both = collate([b, nothing])
    assert both.enc_values.shape == (2, 6, 3) and both.dec_values.dtype == torch.float32
    torch.testing.assert_close(both.dec_values[0], b.dec_values[0])


def test_a_masked_batch_trains_a_model():
    mods = {"rgb": ModalityConfig("image", 16, 16), "vec": ModalityConfig("vector", 1, 2, value_dim=3)}
    torch.manual_seed(0)
    m = FourM(toy_config(modalities=mods))
    mk = _masker({"rgb": 1.0, "vec": 1.0}, {"rgb": 1.0, "vec": 1.0})
    b = collate([mk(_sample(), make_rng(0, 0, i)) for i in range(4)])
    loss, per = m.loss(b)
    loss.backward()
    assert math.isfinite(loss.item()) and "vec" in per


# ------------------------------------------------------------------------------------------ save / load
def test_save_load_round_trip(tmp_path):
    m = model()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    m.save_pretrained(tmp_path / "m")
    loaded = FourM.from_pretrained(tmp_path / "m")
    assert loaded.config == m.config and loaded.config.modalities["vdiff"].value_head == "diffusion"
    b = batch()
    m.eval(), loaded.eval()
    ha, hb = m._hidden(b), loaded._hidden(b)
    for name in ("vec", "vmse"):
        torch.testing.assert_close(
            m.predict_values(ha, b.dec_modality, b.dec_valid)[name],
            loaded.predict_values(hb, b.dec_modality, b.dec_valid)[name],
        )
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = m.predict_values(ha, b.dec_modality, b.dec_valid, steps=4, generator=g1)["vdiff"]
    c = loaded.predict_values(hb, b.dec_modality, b.dec_valid, steps=4, generator=g2)["vdiff"]
    torch.testing.assert_close(a, c)


def test_models_without_continuous_modalities_keep_their_state_dict():
    keys = FourM(toy_config()).state_dict().keys()
    assert not any("value" in k for k in keys)


# ------------------------------------------------------------------------------------------ diffusion head
def _legacy_head(**kw) -> DiffusionHead:
    """The first version: epsilon prediction on the cosine schedule."""
    return DiffusionHead(dim=8, value_dim=3, prediction_type="epsilon", schedule="cosine", **kw)


def test_noising_follows_the_formula():
    head = _legacy_head(num_train_timesteps=50)
    betas = cosine_betas(50)
    abar = torch.cumprod(1 - betas, 0)
    x0, eps, t = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 7, 30, 49])
    expected = abar[t].sqrt()[:, None].float() * x0 + (1 - abar[t]).sqrt()[:, None].float() * eps
    torch.testing.assert_close(head.add_noise(x0, eps, t), expected)
    s = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert float(abar[10]) == pytest.approx(s(11 / 50) / s(0), rel=1e-6)  # the cosine schedule
    assert float(abar[-1]) < 1e-3 and float(abar[0]) > 0.99


def test_zero_terminal_snr_schedule_is_the_cosine_one_rescaled():
    head = DiffusionHead(dim=8, value_dim=3, num_train_timesteps=50)  # default: v_prediction, cosine_zero_snr
    assert (head.prediction_type, head.schedule) == ("v_prediction", "cosine_zero_snr")
    root = torch.cumprod(1 - cosine_betas(50), 0).sqrt()
    expected = ((root - root[-1]) * root[0] / (root[0] - root[-1])) ** 2  # shift to 0 at T, keep t = 0
    torch.testing.assert_close(head.alphas_cumprod, expected.float())
    assert float(head.alphas_cumprod[-1]) == 0.0 and float(head.betas[-1]) == 1.0
    assert float(head.alphas_cumprod[0]) == pytest.approx(float(root[0] ** 2), rel=1e-6)
    assert bool((head.alphas_cumprod[1:] < head.alphas_cumprod[:-1]).all())


def test_v_prediction_loss_against_a_hand_computation():
    torch.manual_seed(0)
    head = DiffusionHead(dim=8, value_dim=3, num_train_timesteps=100, scale=2.0, samples_per_token=2)
    with torch.no_grad():
        head.out.weight.normal_(std=0.5)
    z, value = torch.randn(2, 8), torch.randn(2, 3)
    t, noise = torch.tensor([0, 40, 99, 7]), torch.randn(4, 3)
    abar = head.alphas_cumprod[t][:, None]
    x0 = (value * 2.0).repeat(2, 1)  # rows of draw j: j n ... (j + 1) n - 1
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    v = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    assert torch.equal(v[2], -x0[2])  # t = T: abar = 0, v = -x0
    expected = ((head(x_t, t, z.repeat(2, 1)) - v) ** 2).mean()
    torch.testing.assert_close(head.loss(z, value, t=t, noise=noise), expected)
    legacy = _legacy_head(num_train_timesteps=100, scale=2.0, samples_per_token=2)
    x_t_legacy = legacy.add_noise(x0, noise, t)
    torch.testing.assert_close(
        legacy.loss(z, value, t=t, noise=noise), ((legacy(x_t_legacy, t, z.repeat(2, 1)) - noise) ** 2).mean()
    )


def test_one_ddim_step_against_a_hand_computation():
    torch.manual_seed(0)
    head = _legacy_head(num_train_timesteps=100)
    with torch.no_grad():
        head.out.weight.normal_(std=0.5)  # zero-initialised: make the prediction non-trivial
    sched = head.scheduler(4)
    assert sched.timesteps.tolist() == [99, 74, 49, 24]  # trailing spacing: starts at pure noise
    z, x = torch.randn(2, 8), torch.randn(2, 3)
    t, t_prev = 74, 49
    eps = head(x, torch.full((2,), t), z)
    abar = head.alphas_cumprod
    x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
    expected = abar[t_prev].sqrt() * x0 + (1 - abar[t_prev]).sqrt() * eps  # DDIM, eta 0
    got = sched.step(eps.detach(), t, x).prev_sample
    torch.testing.assert_close(got, expected.detach(), rtol=1e-4, atol=1e-5)


def test_one_v_prediction_ddim_step_against_a_hand_computation():
    torch.manual_seed(0)
    head = DiffusionHead(dim=8, value_dim=3, num_train_timesteps=100, scale=2.0)
    with torch.no_grad():
        head.out.weight.normal_(std=0.5)
    sched = head.scheduler(4)
    assert sched.timesteps.tolist() == [99, 74, 49, 24]
    abar = head.alphas_cumprod
    z, x = torch.randn(2, 8), torch.randn(2, 3)
    with torch.no_grad():
        for t, t_prev in [(74, 49), (99, 74)]:  # a middle step, and the first from pure noise (abar_T = 0)
            v = head(x, torch.full((2,), t), z)
            x0 = abar[t].sqrt() * x - (1 - abar[t]).sqrt() * v
            eps = abar[t].sqrt() * v + (1 - abar[t]).sqrt() * x
            expected = abar[t_prev].sqrt() * x0 + (1 - abar[t_prev]).sqrt() * eps  # DDIM, eta 0
            torch.testing.assert_close(sched.step(v, t, x).prev_sample, expected, rtol=1e-4, atol=1e-5)
        # one-step sampling: x_T = noise, x0 = -v(x_T, T) (abar_T = 0), / scale
        noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(5))
        expected = -head(noise, torch.full((2,), 99), z) / 2.0
    got = head.sample(z, steps=1, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_bad_parameterizations_fail_in_one_line():
    with pytest.raises(FourmError, match="prediction_type 'x0'"):
        DiffusionHead(dim=8, value_dim=3, prediction_type="x0")
    with pytest.raises(FourmError, match="schedule 'linear'"):
        DiffusionHead(dim=8, value_dim=3, schedule="linear")
    with pytest.raises(FourmError, match="steps must be in 1..1000"):
        DiffusionHead(dim=8, value_dim=3).scheduler(0)
    assert set(DiffusionHead(dim=8, value_dim=3).state_dict()) == set(
        _legacy_head().state_dict()
    )  # weights alike


def test_v_prediction_head_learns_to_sample_a_conditional_vector():
    """A few hundred steps on two conditions -> two fixed vectors; 10 DDIM steps land near them."""
    torch.manual_seed(0)
    head = DiffusionHead(dim=4, value_dim=6, width=64, depth=2, scale=2.0, samples_per_token=16)
    z = torch.eye(4)[:2]
    target = F.normalize(torch.randn(2, 6), dim=-1)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(300):
        opt.zero_grad()
        head.loss(z, target).backward()
        opt.step()
    out = head.sample(z, steps=10, generator=torch.Generator().manual_seed(0))
    assert float(F.cosine_similarity(out, target).min()) > 0.9


def test_diffusion_loss_and_sampling_shapes():
    head = DiffusionHead(dim=8, value_dim=3, scale=2.0, samples_per_token=2)
    z, v = torch.randn(5, 8), torch.randn(5, 3)
    loss = head.loss(z, v)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    out = head.sample(z, steps=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (5, 3) and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------ generation / retrieval
def test_regress_vector_is_the_head_on_one_decoder_pass():
    m = model().eval()
    caption = torch.tensor([[11, 12, 13], [14, 15, 16]])
    out = regress_vector(m, {"caption": caption}, "vec")
    assert out.shape == (2, 2 * C)
    with torch.no_grad():
        enc_tok = caption
        ctx = m.encode(
            enc_tok,
            torch.full_like(enc_tok, IDX["caption"]),
            torch.arange(3).expand(2, 3),
            torch.ones(2, 3, dtype=torch.bool),
        )
        pos = torch.arange(2).expand(2, 2)
        h = m.decode(ctx, torch.ones(2, 3, dtype=torch.bool), torch.zeros_like(pos), torch.full_like(pos, IDX["vec"]), pos,
                     torch.ones(2, 2, dtype=torch.bool))  # fmt: skip
        expected = m.value_heads["vec"].proj(h).reshape(2, 2 * C)
    torch.testing.assert_close(out, expected)
    # a continuous condition (the vector as input) and a diffusion target
    vec = torch.randn(2 * C)
    a = regress_vector(m, {"vec": vec}, "vmse")
    b = regress_vector(m, {"vec": -vec}, "vmse")
    assert a.shape == (1, 4) and not torch.allclose(a, b)
    d = regress_vector(
        m, {"caption": caption[0]}, "vdiff", steps=3, generator=torch.Generator().manual_seed(0)
    )
    assert d.shape == (1, C)
    with pytest.raises(FourmError, match="not a continuous target"):
        regress_vector(m, {"caption": caption}, "rgb")
    with pytest.raises(FourmError, match="both a condition and the target"):
        regress_vector(m, {"vec": vec}, "vec")


def test_regressed_embedder_gives_unit_vectors_of_the_regression():
    m = model().eval()
    items = [{"caption": [11, 12, 13, 2]}, {"rgb": torch.arange(16) % 32}]
    emb = RegressedEmbedder(m, "vec", batch_size=1, autocast=False)
    out = emb(items)
    assert out.shape == (2, 2 * C) and emb.dim == 2 * C
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))
    direct = regress_vector(m, {"rgb": torch.arange(16) % 32}, "vec")
    torch.testing.assert_close(out[1], F.normalize(direct[0], dim=-1), rtol=1e-4, atol=1e-5)
    with pytest.raises(FourmError, match="not a continuous target"):
        RegressedEmbedder(m, "meta")


# ------------------------------------------------------------------------------------------ data
def test_token_dataset_stores_float_values(tmp_path):
    info = TokenDatasetInfo(modalities={
        "rgb": ModalityTokens("image", 16, 4), "vec": ModalityTokens("vector", 1, 2, value_dim=3),
    })  # fmt: skip
    rows = [{"rgb": [1, 2, 3, 4], "vec": [0.5, -0.25, 1.0, 0.0, 2.0, -3.0]}, {"rgb": [0, 0, 1, 1]}]
    write_token_dataset(tmp_path / "d", {"train": rows}, info)
    dsd, loaded = load_token_dataset(tmp_path / "d")
    assert loaded.modalities["vec"].value_dim == 3
    samples = TokenSamples(dsd["train"])
    assert samples[0]["vec"].dtype == torch.float32 and samples[0]["rgb"].dtype == torch.long
    torch.testing.assert_close(samples[0]["vec"], torch.tensor([0.5, -0.25, 1.0, 0.0, 2.0, -3.0]))
    assert "vec" not in samples[1]
    with pytest.raises(FourmError, match="must be 6 finite values"):
        write_token_dataset(tmp_path / "e", {"train": [{"vec": [1.0, 2.0]}]}, info)


# ------------------------------------------------------------------------------------------ bad configs
@pytest.mark.parametrize(
    "fields, message",
    [
        ({"kind": "image", "vocab_size": 1, "length": 4, "value_dim": 3}, "must have kind vector"),
        ({"kind": "vector", "vocab_size": 8, "length": 1, "value_dim": 3}, "vocab_size must be 1"),
        ({"kind": "vector", "vocab_size": 1, "length": 1, "value_dim": -2}, "value_dim must be >= 0"),
        ({"kind": "vector", "vocab_size": 1, "length": 1, "value_dim": 3, "value_head": "gan"}, "value_head"),
        ({"kind": "vector", "vocab_size": 1, "length": 1, "value_dim": 3, "value_loss": "l1"}, "value_loss"),
        ({"kind": "vector", "vocab_size": 1, "length": 1, "value_dim": 3, "value_scale": 0.0}, "value_scale"),
    ],
)
def test_bad_model_modality_configs_fail_in_one_line(fields, message):
    with pytest.raises(FourmError, match=message) as e:
        ModalityConfig.from_dict(fields).check("v")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"kind": "image", "vocab_size": 1, "num_tokens": 4, "value_dim": 3}, "needs kind 'vector'"),
        (
            {"kind": "vector", "vocab_size": 1, "num_tokens": 1, "value_dim": 3, "tokenizer": "t"},
            "'tokenizer' must be unset",
        ),
        ({"kind": "vector", "vocab_size": 4, "num_tokens": 1, "value_dim": 3}, "'vocab_size' must be 1"),
        ({"kind": "vector", "vocab_size": 1, "num_tokens": 1, "value_head": "diffusion"}, "need 'value_dim'"),
    ],
)
def test_bad_registry_entries_fail_in_one_line(fields, message):
    with pytest.raises(FourmError, match=message) as e:
        ModalitySpec.from_dict({"name": "v", **fields})
    assert "\n" not in str(e.value)


def test_other_bad_inputs_fail_in_one_line():
    with pytest.raises(FourmError, match="value_dim applies to vector"):
        ModalityTokens("image", 4, 4, value_dim=3).validate()
    cfg = MaskingConfig.from_dict({"input_budget": 4, "target_budget": 4})
    with pytest.raises(FourmError, match="continuous modalities are vectors"):
        Masker(cfg, ORDER, {"rgb": "image", "vec": "vector"}, SP, value_dims={"rgb": 3})
    with pytest.raises(FourmError, match="not a whole number of tokens of 4"):
        Masker(cfg, ORDER, {"rgb": "image", "vec": "vector"}, SP, value_dims={"vec": 4})(
            _sample(), make_rng(0, 0, 0)
        )
    mods = {"rgb": ModalityConfig("image", 16, 16), "vec": ModalityConfig("vector", 1, 2, value_dim=3)}
    with pytest.raises(FourmError, match="not a continuous modality of the data"):
        apply_value_heads(mods, {"rgb": {"value_head": "diffusion"}})
    with pytest.raises(FourmError, match="unknown field 'head'"):
        apply_value_heads(mods, {"vec": {"head": "diffusion"}})
    assert apply_value_heads(mods, {"vec": {"value_head": "diffusion"}})["vec"].value_head == "diffusion"
    m, b = model(), batch()
    b.dec_values = None
    with pytest.raises(FourmError, match="dec_values is None"):
        m.loss(b)
    b = batch()
    b.dec_values = b.dec_values.long()
    with pytest.raises(FourmError, match="float tensor"):
        m.loss(b)


# ------------------------------------------------------------------------------------------ diffusion parameterisation
DIFF = {"kind": "vector", "vocab_size": 1, "length": 1, "value_dim": C, "value_head": "diffusion", "input": False}


def _diffusion_model(**fields) -> FourM:
    mods = {"rgb": ModalityConfig("image", 16, 16), "vd": ModalityConfig(**{**DIFF, **fields})}
    torch.manual_seed(0)
    return FourM(toy_config(modalities=mods))


def _head(m: FourM) -> tuple[str, str]:
    head = m.value_heads["vd"]
    return head.prediction_type, head.schedule


def test_the_parameterisation_reaches_the_head():
    assert _head(_diffusion_model()) == ("v_prediction", "cosine_zero_snr")  # a new config: the new default
    m = _diffusion_model(value_prediction="epsilon", value_schedule="cosine")
    assert _head(m) == ("epsilon", "cosine")
    torch.testing.assert_close(m.value_heads["vd"].alphas_cumprod, torch.cumprod(1 - cosine_betas(1000), 0).float())
    assert _head(_diffusion_model(value_schedule="cosine")) == ("v_prediction", "cosine")
    # the training path (model.value_heads of a train config) sets and records it too
    mods = {"vec": ModalityConfig("vector", 1, 1, value_dim=3)}
    new = apply_value_heads(mods, {"vec": {"value_head": "diffusion"}})["vec"]
    old = apply_value_heads(mods, {"vec": {"value_head": "diffusion", "value_prediction": "epsilon"}})["vec"]
    assert (new.value_prediction, new.value_schedule) == ("v_prediction", "cosine_zero_snr")
    assert (old.value_prediction, old.value_schedule) == ("epsilon", "cosine_zero_snr")


@pytest.mark.parametrize("fields", [{}, {"value_prediction": "epsilon", "value_schedule": "cosine"}])
def test_a_saved_model_round_trips_its_parameterisation(tmp_path, fields):
    m = _diffusion_model(**fields)
    m.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["modalities"]["vd"]
    assert (saved["value_prediction"], saved["value_schedule"]) == _head(m)  # recorded, defaults too
    loaded = FourM.from_pretrained(tmp_path / "m")
    assert loaded.config == m.config and _head(loaded) == _head(m)
    z = torch.randn(3, m.config.dim)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(m.value_heads["vd"].predict(z, steps=3, generator=g1),
                               loaded.value_heads["vd"].predict(z, steps=3, generator=g2))  # fmt: skip


def test_an_old_config_without_the_fields_loads_as_epsilon_on_cosine(tmp_path):
    m = _diffusion_model(value_prediction="epsilon", value_schedule="cosine")  # as the first version trained it
    m.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    data = json.loads(path.read_text())
    for mod in data["modalities"].values():  # a config.json written before the fields existed
        del mod["value_prediction"], mod["value_schedule"]
    path.write_text(json.dumps(data))
    loaded = FourM.from_pretrained(tmp_path / "m")
    assert _head(loaded) == ("epsilon", "cosine") and loaded.config == m.config
    assert FourMConfig.from_file(path).modalities["vd"].value_prediction == "epsilon"
    assert FourMConfig.load(path).modalities["vd"].value_schedule == "cosine"
    # only where a value head is a diffusion one; a dict built in code is a new config (new default)
    assert loaded.config.modalities["rgb"].value_prediction == "v_prediction"
    assert FourMConfig.from_dict(data).modalities["vd"].value_prediction == "v_prediction"


BUILDS = {
    "from_dict": lambda f: ModalityConfig.from_dict({**DIFF, **f}).check("vd"),
    "in code": lambda f: ModalityConfig(**{**DIFF, **f}).check("vd"),
    "value_heads": lambda f: apply_value_heads({"vd": ModalityConfig(**DIFF)}, {"vd": f}),
}


@pytest.mark.parametrize("build", list(BUILDS))
@pytest.mark.parametrize(
    "fields, name",
    [({"value_prediction": "x0"}, "value_prediction"), ({"value_prediction": "v"}, "value_prediction"),
     ({"value_schedule": "linear"}, "value_schedule")],
)  # fmt: skip
def test_bad_parameterisations_fail_in_one_line(build, fields, name):
    with pytest.raises(FourmError, match=name) as e:
        BUILDS[build](fields)
    assert "\n" not in str(e.value)


def test_a_bad_parameterisation_in_a_saved_config_fails_in_one_line(tmp_path):
    _diffusion_model().save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    data = json.loads(path.read_text())
    data["modalities"]["vd"]["value_schedule"] = "sigmoid"
    path.write_text(json.dumps(data))
    with pytest.raises(FourmError, match="value_schedule': 'sigmoid'") as e:
        FourM.from_pretrained(tmp_path / "m")
    assert "\n" not in str(e.value)
