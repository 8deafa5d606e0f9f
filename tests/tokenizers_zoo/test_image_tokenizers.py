"""Image tokenizers: every shipped config at toy width, losses vs references, GAN weighting, I/O, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fourm.errors import FourmError
from fourm.testing.tokenizers import CONFIG_DIR, random_images, toy_config
from fourm.utils.config import read_mapping
from tokenizers_zoo.image import ImageTokenizer, ImageTokenizerConfig
from tokenizers_zoo.image.losses import adaptive_weight, disc_factor, hinge_d_loss, reconstruction_loss

IMAGE_MODALITIES = ("rgb", "depth", "semseg", "normals", "edges")
IMAGE_CONFIGS = sorted(
    p for p in CONFIG_DIR.glob("*.yaml") if read_mapping(p).get("modality") in IMAGE_MODALITIES
)
# Diffusion-decoder configs are checked in test_image_diffusion.py (diffusers is slow to import),
# dynamic-length ones (a token sequence, not a grid) in test_dynamic_tokenizer.py.
FAST_CONFIGS = [
    p for p in IMAGE_CONFIGS
    if read_mapping(p).get("decoder") != "diffusion" and read_mapping(p).get("architecture") != "dynamic"
]
SIZE = 32


def test_every_modality_has_a_default_config():
    names = {p.stem for p in IMAGE_CONFIGS}
    assert {"rgb", "depth", "semseg", "edges", "normals"} <= names
    assert {"rgb_vqgan", "rgb_fsq", "rgb_dvae", "rgb_diffusion", "rgb_titok"} <= names


@pytest.mark.parametrize("path", FAST_CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_at_toy_width(path, tmp_path):
    torch.manual_seed(0)
    cfg = toy_config(path)
    tok = ImageTokenizer(cfg)
    images = random_images(tok, n=4)

    # training step: loss is finite and every trainable parameter receives a finite gradient
    tok.train()
    loss, logs = tok.loss(images, step=cfg.gan.disc_start + 1)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(np.isfinite(v) for v in logs.values())
    loss.backward()
    for name, p in tok.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"no gradient for {name}"
            assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
    recon, q = tok(images)
    assert recon.shape == (4, cfg.channels_out, SIZE, SIZE)
    assert q.indices.shape == (4, *tok.grid_size)

    # encode / decode in eval mode
    tok.eval()
    tokens = tok.encode(images)
    assert tokens.shape == (4, tok.num_tokens) and tokens.dtype == torch.long
    assert tok.num_tokens == int(np.prod(tok.grid_size))
    assert 0 <= int(tokens.min()) and int(tokens.max()) < tok.vocab_size
    decoded = tok.decode(tokens)
    if cfg.modality == "semseg":
        assert decoded.shape == (4, SIZE, SIZE) and decoded.dtype == torch.long
        assert int(decoded.max()) < cfg.num_classes
    else:
        assert decoded.shape == (4, cfg.channels_out, SIZE, SIZE) and decoded.dtype == torch.float32
        assert float(decoded.min()) >= -1 and float(decoded.max()) <= 1
        if cfg.modality == "edges":
            assert set(decoded.unique().tolist()) <= {0.0, 1.0}

    # save / load round trip: identical tokens and decodings
    tok.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["config.json", "model.safetensors"]
    loaded = ImageTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.cfg == cfg
    assert torch.equal(loaded.encode(images), tokens)
    assert torch.equal(loaded.decode(tokens), decoded)


def test_toy_configs_run_under_bf16_autocast():
    tok = ImageTokenizer(toy_config(CONFIG_DIR / "rgb.yaml"))
    images = random_images(tok, n=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = tok.loss(images, step=0)
        tokens = tok.eval().encode(images)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert tokens.shape == (2, tok.num_tokens)


# ---- preprocess / postprocess -------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["rgb", "depth", "semseg", "normals", "edges"])
def test_preprocess_postprocess_round_trip(modality):
    rng = np.random.default_rng(0)
    raw = {
        "rgb": rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8),
        "normals": rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8),
        "depth": rng.random((3, SIZE, SIZE), dtype=np.float32),
        "semseg": rng.integers(0, 8, (3, SIZE, SIZE)).astype(np.uint8),
        "edges": rng.integers(0, 2, (3, SIZE, SIZE)).astype(np.uint8),
    }[modality]
    tok = ImageTokenizer(toy_config(CONFIG_DIR / f"{modality}.yaml"))
    x = tok.preprocess(raw)
    if modality == "semseg":
        assert x.dtype == torch.long and x.shape == (3, SIZE, SIZE)
    else:
        assert x.dtype == torch.float32 and x.shape == (3, tok.cfg.channels_in, SIZE, SIZE)
        lo, hi = (0.0, 1.0) if modality == "edges" else (-1.0, 1.0)
        assert float(x.min()) >= lo and float(x.max()) <= hi
    back = tok.postprocess(x)
    assert back.dtype == raw.dtype and back.shape == raw.shape
    if modality == "depth":
        np.testing.assert_allclose(back, raw, atol=1e-6)
    else:
        np.testing.assert_array_equal(back, raw)
    single = tok.preprocess(raw[0])  # one image -> unbatched tensor
    assert torch.equal(single, x[0])


def test_wrong_image_size_or_channels_raises():
    tok = ImageTokenizer(toy_config(CONFIG_DIR / "rgb.yaml"))
    with pytest.raises(FourmError, match=f"{SIZE}x{SIZE}"):
        tok.encode(torch.zeros(1, 3, SIZE + 8, SIZE + 8))
    with pytest.raises(FourmError, match=f"expects a float tensor \\(B, 3, {SIZE}, {SIZE}\\)"):
        tok.encode(torch.zeros(1, 1, SIZE, SIZE))
    with pytest.raises(FourmError, match=f"expected {SIZE}x{SIZE}"):
        tok.preprocess(np.zeros((SIZE * 2, SIZE * 2, 3), np.uint8))
    with pytest.raises(FourmError, match="shape"):
        tok.preprocess(np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(FourmError, match="tokens of shape"):
        tok.decode(torch.zeros(1, tok.num_tokens + 1, dtype=torch.long))
    semseg = ImageTokenizer(toy_config(CONFIG_DIR / "semseg.yaml"))
    with pytest.raises(FourmError, match="class id 9 out of range"):
        semseg.preprocess(np.full((SIZE, SIZE), 9, np.uint8))


def test_bad_configs_raise():
    base = read_mapping(CONFIG_DIR / "rgb.yaml")
    with pytest.raises(FourmError, match="channel_mult needs 4 entries"):
        ImageTokenizerConfig.from_dict({**base, "channel_mult": [1, 2]})
    with pytest.raises(FourmError, match="num_classes"):
        ImageTokenizerConfig.from_dict({**base, "modality": "semseg"})
    with pytest.raises(FourmError, match="unknown config field 'widht'"):
        ImageTokenizerConfig.from_dict({**base, "widht": 3})
    with pytest.raises(FourmError, match="perceptual_weights"):
        ImageTokenizerConfig.from_dict({**base, "loss": {"perceptual_weight": 0.1}})
    with pytest.raises(FourmError, match="diffusion"):
        ImageTokenizerConfig.from_dict(
            {**base, "modality": "semseg", "num_classes": 4, "decoder": "diffusion"}
        )


# ---- losses ---------------------------------------------------------------------------------------


def test_semseg_loss_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 4, generator=g)
    target = torch.randint(0, 5, (2, 4, 4), generator=g)
    log_probs = logits.log_softmax(1)
    reference = -log_probs.gather(1, target[:, None]).mean()
    got = reconstruction_loss("semseg", logits, target)
    torch.testing.assert_close(got, F.cross_entropy(logits, target))
    torch.testing.assert_close(got, reference)


def test_edges_loss_is_binary_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 4, 4, generator=g)
    target = (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    p = torch.sigmoid(logits)
    reference = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    torch.testing.assert_close(reconstruction_loss("edges", logits, target), reference)
    weighted = -(3.0 * target * p.log() + (1 - target) * (1 - p).log()).mean()
    torch.testing.assert_close(reconstruction_loss("edges", logits, target, edge_pos_weight=3.0), weighted)


def test_continuous_losses_are_l1_and_l2():
    a, b = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, 1.0]])
    assert float(reconstruction_loss("rgb", a, b, "l1")) == pytest.approx((0.5 + 2.0) / 2)
    assert float(reconstruction_loss("depth", a, b, "l2")) == pytest.approx((0.25 + 4.0) / 2)
    with pytest.raises(FourmError, match="l3"):
        reconstruction_loss("rgb", a, b, "l3")


def test_hinge_discriminator_loss():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1 - real) = [0, 0.5] -> 0.25; relu(1 + fake) = [0, 1] -> 0.5
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.5 * (0.25 + 0.5))


def test_adaptive_weight_matches_hand_computation():
    # toy decoder: out = W x with W (2, 3); rec = sum((W x - y)^2); g = -mean(W x)
    W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], requires_grad=True)
    x, y = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([0.5, -0.5])
    out = W @ x
    rec, g = ((out - y) ** 2).sum(), -out.mean()
    rec_grad = torch.outer(2 * (out.detach() - y), x)  # d rec / dW
    g_grad = torch.outer(torch.full((2,), -0.5), x)  # d g / dW
    expected = rec_grad.norm() / (g_grad.norm() + 1e-4)
    got = adaptive_weight(rec, g, W)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert not got.requires_grad
    assert float(adaptive_weight(rec, g, W, max_weight=0.1)) == pytest.approx(0.1)


def test_discriminator_starts_after_disc_start():
    assert disc_factor(99, 100) == 0.0 and disc_factor(100, 100) == 1.0
    cfg = toy_config(CONFIG_DIR / "rgb_vqgan.yaml", "gan.disc_start=5")
    tok = ImageTokenizer(cfg).train()
    images = random_images(tok, n=2)
    before, logs = tok.loss(images, step=4)
    assert "d_loss" not in logs
    before.backward()
    assert all(p.grad is None for p in tok.discriminator.parameters())
    tok.zero_grad(set_to_none=True)
    after, logs = tok.loss(images, step=5)
    assert {"d_loss", "g_loss", "g_weight"} <= set(logs) and logs["g_weight"] > 0
    after.backward()
    assert all(p.grad is not None for p in tok.discriminator.parameters())
    assert sum(float(p.grad.abs().sum()) for p in tok.discriminator.parameters()) > 0
    # the generator term does not train the discriminator: its grads equal those of d_loss alone
    disc_grads = [p.grad.clone() for p in tok.discriminator.parameters()]
    tok.zero_grad(set_to_none=True)
    with torch.no_grad():
        recon, _ = tok(images)
    d_only = hinge_d_loss(tok.discriminator(images), tok.discriminator(recon))
    d_only.backward()
    for got, want in zip(disc_grads, (p.grad for p in tok.discriminator.parameters())):
        torch.testing.assert_close(got, cfg.gan.disc_loss_weight * want, rtol=1e-4, atol=1e-6)


def test_internal_step_counter_delays_the_discriminator():
    tok = ImageTokenizer(toy_config(CONFIG_DIR / "rgb_vqgan.yaml", "gan.disc_start=2")).train()
    images = random_images(tok, n=2)
    seen = ["d_loss" in tok.loss(images)[1] for _ in range(3)]
    assert seen == [False, False, True]


# ---- perceptual loss ------------------------------------------------------------------------------


def test_perceptual_loss_needs_a_user_weights_file(tmp_path):
    from safetensors.torch import save_file

    from tokenizers_zoo.image.losses import PerceptualLoss, PerceptualNet

    with pytest.raises(FourmError, match="not found"):
        PerceptualLoss(tmp_path / "missing.safetensors")
    with pytest.raises(FourmError, match="perceptual_weights is not set"):
        PerceptualLoss(None)
    save_file({"x": torch.zeros(2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(FourmError, match="do not match"):
        PerceptualLoss(tmp_path / "bad.safetensors")
    torch.manual_seed(0)
    net = PerceptualNet()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "p.safetensors"))
    loss_fn = PerceptualLoss(tmp_path / "p.safetensors")
    assert torch.equal(loss_fn.net.stages[0][0].weight, net.stages[0][0].weight)
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    assert float(loss_fn(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss_fn(a, -a)) > 0.01

    cfg = toy_config(
        CONFIG_DIR / "rgb.yaml",
        "loss.perceptual_weight=0.5",
        f"loss.perceptual_weights={tmp_path / 'p.safetensors'}",
    )
    tok = ImageTokenizer(cfg)
    _, logs = tok.loss(random_images(tok), step=0)
    assert logs["perceptual"] > 0
    assert not any(k.startswith("_perceptual") or "perceptual" in k for k in tok.state_dict())
    missing = toy_config(
        CONFIG_DIR / "rgb.yaml", "loss.perceptual_weight=0.5", "loss.perceptual_weights=/nope.st"
    )
    with pytest.raises(FourmError, match="/nope.st"):
        ImageTokenizer(missing).check_training_setup()


# ---- persistence errors ---------------------------------------------------------------------------


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FourmError, match="not found"):
        ImageTokenizer.from_pretrained(tmp_path / "nothing")
    tok = ImageTokenizer(toy_config(CONFIG_DIR / "depth.yaml"))
    tok.save_pretrained(tmp_path / "t")
    (tmp_path / "t" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(FourmError, match="corrupt tokenizer weights"):
        ImageTokenizer.from_pretrained(tmp_path / "t")
    (tmp_path / "t" / "model.safetensors").unlink()
    with pytest.raises(FourmError, match="missing model.safetensors"):
        ImageTokenizer.from_pretrained(tmp_path / "t")
    tok.save_pretrained(tmp_path / "t")
    (tmp_path / "t" / "config.json").write_text("{not json")
    with pytest.raises(FourmError, match="corrupt tokenizer config"):
        ImageTokenizer.from_pretrained(tmp_path / "t")
    data = tok.cfg.to_dict()
    data["width"] = 16  # weights no longer match the architecture
    (tmp_path / "t" / "config.json").write_text(json.dumps(data))
    with pytest.raises(FourmError, match="do not match"):
        ImageTokenizer.from_pretrained(tmp_path / "t")


def test_detail_weights_favour_edges_and_leave_flat_images_alone():
    from tokenizers_zoo.image.losses import detail_weights

    flat = torch.full((2, 3, 8, 8), 0.3)
    out = flat + torch.randn_like(flat) * 0.1
    assert torch.equal(detail_weights(flat, 4.0), torch.ones(2, 1, 8, 8))
    torch.testing.assert_close(reconstruction_loss("rgb", out, flat, "l1", detail_weight=4.0),
                               reconstruction_loss("rgb", out, flat, "l1"))
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 1.0  # a vertical edge between columns 3 and 4
    w = detail_weights(step, 4.0)[0, 0]
    assert torch.allclose(w[:, 2:6], torch.full((8, 4), 5.0)) and torch.allclose(w[:, :2], torch.ones(8, 2))
    # an error on the edge costs more than the same error on the flat part
    on_edge, off_edge = step.clone(), step.clone()
    on_edge[..., 3] += 0.5
    off_edge[..., 0] += 0.5
    assert reconstruction_loss("rgb", on_edge, step, detail_weight=4.0) > reconstruction_loss(
        "rgb", off_edge, step, detail_weight=4.0
    )
