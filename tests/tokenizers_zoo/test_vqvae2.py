"""Two-level VQ-VAE-2 tokenizer (architecture: vqvae2): grids, conditioning, gradients, I/O, losses, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourm.errors import FourmError
from fourm.testing.tokenizers import CONFIG_DIR, random_images, toy_config
from fourm.utils.config import read_mapping
from tokenizers_zoo.image import ImageTokenizer, ImageTokenizerConfig
from tokenizers_zoo.image.trainer import evaluate
from tokenizers_zoo.image.vqvae2 import VQVAE2Bottleneck, has_levels, join_levels, split_levels

CONFIG = CONFIG_DIR / "rgb_vqvae2.yaml"


def toy(*overrides: str, image_size: int = 64, seed: int = 0) -> ImageTokenizer:
    torch.manual_seed(seed)
    return ImageTokenizer(toy_config(CONFIG, *overrides, image_size=image_size))


@pytest.mark.parametrize("size", [64, 128])
def test_both_grids_have_the_expected_shapes(size):
    tok = toy(image_size=size).eval()
    bottom_side, top_side = size // 8, size // 16
    n_top, n_bottom = top_side**2, bottom_side**2
    assert isinstance(tok.quantizer, VQVAE2Bottleneck) and has_levels(tok)
    assert tok.quantizer.top_grid == (top_side, top_side) and tok.quantizer.bottom_grid == (
        bottom_side,
        bottom_side,
    )
    assert tok.num_tokens == n_top + n_bottom and tok.grid_size == (n_top + n_bottom,)
    images = random_images(tok, n=3)
    top, bottom, _ = tok.quantizer.quantize_levels(tok.encoder(tok.network_input(images)))
    assert top.indices.shape == (3, top_side, top_side) and bottom.indices.shape == (
        3,
        bottom_side,
        bottom_side,
    )
    tokens = tok.encode(images)
    assert tokens.shape == (3, n_top + n_bottom) and tokens.dtype == torch.long
    levels = split_levels(tok, tokens)
    assert list(levels) == ["top", "bottom"]  # token order: top grid, then bottom grid
    assert torch.equal(levels["top"], top.indices.reshape(3, -1))
    assert torch.equal(levels["bottom"], bottom.indices.reshape(3, -1))
    assert torch.equal(join_levels(tok, levels["top"], levels["bottom"]), tokens)
    z_q = tok.quantizer.indices_to_latents(tokens)
    assert z_q.shape == (3, 2 * tok.quantizer.dim, bottom_side, bottom_side)
    assert tok.decode(tokens).shape == (3, 3, size, size)


def test_top_codes_condition_the_bottom_quantisation():
    tok = toy().eval()
    features = tok.encoder(tok.network_input(random_images(tok, n=2)))  # the same bottom features
    g = torch.Generator().manual_seed(1)
    grid = tok.quantizer.top_grid
    top_a = torch.randint(0, tok.vocab_size, (2, *grid), generator=g)
    top_b = (top_a + 1 + torch.randint(0, tok.vocab_size - 1, top_a.shape, generator=g)) % tok.vocab_size
    with torch.no_grad():
        _, bottom_a, input_a = tok.quantizer.quantize_levels(features, top_indices=top_a)
        _, bottom_b, input_b = tok.quantizer.quantize_levels(features, top_indices=top_b)
    assert not torch.allclose(input_a, input_b)  # the bottom quantiser's input depends on the top codes
    assert not torch.equal(bottom_a.indices, bottom_b.indices)  # ... and so do the bottom codes
    # the decoder output differs too, even with the bottom codes held fixed
    n = 2
    bottom = bottom_a.indices.reshape(n, -1)
    out_a = tok.decode(join_levels(tok, top_a.reshape(n, -1), bottom))
    out_b = tok.decode(join_levels(tok, top_b.reshape(n, -1), bottom))
    assert not torch.allclose(out_a, out_b)
    # quantising the top itself gives the same bottom codes as imposing those top codes
    with torch.no_grad():
        top, bottom_self, _ = tok.quantizer.quantize_levels(features)
        _, bottom_imposed, _ = tok.quantizer.quantize_levels(features, top_indices=top.indices)
    assert torch.equal(bottom_self.indices, bottom_imposed.indices)


def test_straight_through_gradients_reach_both_encoders():
    tok = toy().train()
    images = random_images(tok, n=4)
    recon, _ = tok(images)
    (recon.float() - images).abs().mean().backward()  # a loss on the decoder output only
    bottom_w = tok.encoder.conv_in.weight.grad
    top_w = tok.quantizer.top_encoder.net[0].weight.grad
    assert bottom_w is not None and float(bottom_w.abs().sum()) > 0
    assert top_w is not None and float(top_w.abs().sum()) > 0
    # every parameter of the top path gets a gradient from the full training loss too
    tok.zero_grad()
    loss, _ = tok.loss(images, step=0)
    loss.backward()
    for name, p in tok.quantizer.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    tok = toy()
    images = random_images(tok, n=3)
    tok.train()
    tok.loss(images, step=0)  # k-means init and EMA updates change the codebooks' buffers
    tok.eval()
    tokens, decoded = tok.encode(images), tok.decode(tok.encode(images))
    tok.save_pretrained(tmp_path / "tok")
    loaded = ImageTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.cfg == tok.cfg and loaded.cfg.architecture == "vqvae2"
    assert torch.equal(loaded.encode(images), tokens)
    assert torch.equal(loaded.decode(tokens), decoded)


def _hand_vq_loss(z: torch.Tensor, codes: torch.Tensor, beta: float) -> tuple[float, list[int]]:
    """(codebook + beta * commitment loss, nearest ids) with plain Python loops; z (B, D, h, w)."""
    vectors = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).tolist()
    table = codes.tolist()
    total, ids = 0.0, []
    for v in vectors:
        dists = [sum((a - b) ** 2 for a, b in zip(v, c)) for c in table]
        k = min(range(len(table)), key=dists.__getitem__)
        ids.append(k)
        total += dists[k]
    mse = total / (len(vectors) * len(vectors[0]))
    return mse + beta * mse, ids  # ||sg[z] - e||^2 + beta ||z - sg[e]||^2: equal values


def test_codebook_losses_match_a_hand_computation():
    plain = ["quantizer.use_ema=false", "quantizer.l2_normalize=false", "quantizer.code_dim=null",
             "quantizer.kmeans_init=false", "quantizer.dead_code_steps=0", "quantizer.codebook_size=4",
             "quantizer.beta=0.25"]  # fmt: skip
    tok = toy(*plain, image_size=16).eval()  # bottom 2x2, top 1x1, dim 8, 4 codes per level
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        tok.quantizer.top.embedding.copy_(torch.randn(4, 8, generator=g))
        tok.quantizer.bottom.embedding.copy_(torch.randn(4, 8, generator=g))
    features = tok.encoder(tok.network_input(random_images(tok, n=2))).detach()
    out = tok.quantizer(features)
    top, bottom, bottom_in = tok.quantizer.quantize_levels(features)
    top_in = tok.quantizer.top_encoder(features)
    top_loss, top_ids = _hand_vq_loss(top_in.detach(), tok.quantizer.top.embedding.detach(), 0.25)
    bottom_loss, bottom_ids = _hand_vq_loss(bottom_in.detach(), tok.quantizer.bottom.embedding.detach(), 0.25)
    assert top.indices.reshape(-1).tolist() == top_ids and bottom.indices.reshape(-1).tolist() == bottom_ids
    assert float(top.loss.detach()) == pytest.approx(top_loss, rel=1e-5)
    assert float(bottom.loss.detach()) == pytest.approx(bottom_loss, rel=1e-5)
    assert float(out.loss.detach()) == pytest.approx(top_loss + bottom_loss, rel=1e-5)
    assert out.indices.tolist() == [top_ids[i : i + 1] + bottom_ids[4 * i : 4 * i + 4] for i in range(2)]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"top_downsample": 3}, "top_downsample must be a power of two >= 2, got 3"),
        ({"top_downsample": 1}, "top_downsample must be a power of two >= 2, got 1"),
        ({"top_downsample": 16}, "top_downsample 16 does not divide the bottom grid 8x8"),
        (
            {"quantizer": {"kind": "fsq", "dim": None}},
            "architecture 'vqvae2' needs quantizer kind 'vq', got 'fsq'",
        ),
        ({"decoder": "diffusion"}, "architecture 'vqvae2' needs decoder 'deterministic', got 'diffusion'"),
        ({"channel_mult": [1, 2]}, "channel_mult needs 4 entries"),
    ],
)
def test_bad_configs_raise_one_line_errors(override, message):
    data = {**read_mapping(CONFIG), **override}
    with pytest.raises(FourmError) as err:
        ImageTokenizerConfig.from_dict(data)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_level_helpers_refuse_wrong_shapes_and_single_level_tokenizers():
    tok = toy(image_size=32).eval()  # bottom 4x4 = 16, top 2x2 = 4 tokens
    with pytest.raises(FourmError, match=r"tokens of shape \(B, 20\)"):
        tok.decode(torch.zeros(1, 16, dtype=torch.long))  # the bottom grid alone cannot be decoded
    with pytest.raises(FourmError, match=r"top tokens of shape \(B, 4\)"):
        join_levels(tok, torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 16, dtype=torch.long))
    with pytest.raises(FourmError, match="one token grid"):
        split_levels(
            ImageTokenizer(toy_config(CONFIG_DIR / "rgb.yaml")), torch.zeros(1, 16, dtype=torch.long)
        )


def test_evaluate_reports_the_usage_of_each_level():
    tok = toy(image_size=32)
    arrays = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    metrics, recons = evaluate(tok, arrays, batch_size=2, autocast_dtype=None)
    assert recons.shape == arrays.shape
    for key in ("usage_top", "usage_bottom", "perplexity_top", "perplexity_bottom"):
        assert key in metrics and np.isfinite(metrics[key])
    assert 0 < metrics["usage_top"] <= 100.0 * 16 / tok.vocab_size  # 4 images x 4 top tokens


@pytest.mark.parametrize(
    "config, suffix, top_side, tokens", [("rgb_vqvae2.yaml", "", 4, 80), ("rgb_vqvae2_68.yaml", "_68", 2, 68)]
)
def test_rgb_top_and_rgb_bottom_modalities_match_the_shipped_tokenizer(config, suffix, top_side, tokens):
    from fourm.modalities import ModalityRegistry
    from fourm.resources import CONFIG_ROOT

    extra = CONFIG_ROOT / "modalities" / "extra"
    top, bottom = f"rgb_top{suffix}", f"rgb_bottom{suffix}"
    registry = ModalityRegistry.from_files([extra / f"{top}.yaml", extra / f"{bottom}.yaml"])
    cfg = ImageTokenizerConfig.from_dict(read_mapping(CONFIG_DIR / config))
    tok = ImageTokenizer(cfg)  # full size, untrained
    assert tok.num_tokens == tokens and tok.quantizer.top_grid == (top_side, top_side)
    for name, level in ((top, "top"), (bottom, "bottom")):
        spec = registry[name]
        assert spec.token_level == level and spec.data_key == "rgb"
        assert spec.tokenizer == f"tokenizers/{(CONFIG_DIR / config).stem}"
        assert spec.num_tokens == tok.quantizer.level_sizes[level] and spec.vocab_size == tok.vocab_size
        assert spec.image_size == tok.cfg.image_size
    assert registry[top].grid_size == top_side and registry[bottom].grid_size == 8


def test_training_loop_trains_and_saves_a_vqvae2_tokenizer(tmp_path):
    from tokenizers_zoo.image.trainer import train_image_tokenizer

    rng = np.random.default_rng(0)
    samples = [{"id": f"s{i}", "rgb": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)} for i in range(12)]
    cfg = toy_config(CONFIG, "train.batch_size=4", "train.eval_every=3", "train.eval_samples=4",
                     "train.warmup_steps=1", image_size=32)  # fmt: skip
    result = train_image_tokenizer(cfg, samples[:8], samples[8:], tmp_path, steps=3, progress=False)
    assert len(result["losses"]) == 3 and all(np.isfinite(result["losses"]))
    assert {"usage_top", "usage_bottom", "psnr"} <= set(result["final"])
    tok = ImageTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert has_levels(tok) and tok.num_tokens == 20
