"""Diffusion-decoder image tokenizer at toy width: DDPM training loss, deterministic DDIM decoding."""

from __future__ import annotations

import pytest
import torch

from fourm.testing.tokenizers import CONFIG_DIR, random_images, toy_config
from fourm.utils.config import read_mapping
from tokenizers_zoo.image import ImageTokenizer

DIFFUSION_CONFIGS = sorted(
    p for p in CONFIG_DIR.glob("*.yaml") if read_mapping(p).get("decoder") == "diffusion"
)


def test_a_diffusion_config_is_shipped():
    assert [p.stem for p in DIFFUSION_CONFIGS] == ["rgb_diffusion"]


@pytest.mark.parametrize("path", DIFFUSION_CONFIGS, ids=lambda p: p.stem)
def test_diffusion_tokenizer_at_toy_width(path, tmp_path):
    torch.manual_seed(0)
    cfg = toy_config(path)
    tok = ImageTokenizer(cfg).train()
    images = random_images(tok, n=2)

    loss, logs = tok.loss(images, step=0)
    assert torch.isfinite(loss) and logs["recon"] > 0
    loss.backward()
    for name, p in tok.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    x0_hat, q = tok(images)
    assert x0_hat.shape == images.shape and float(x0_hat.detach().abs().max()) <= 1

    tok.eval()
    tokens = tok.encode(images)
    assert tokens.shape == (2, tok.num_tokens) and tokens.dtype == torch.long
    assert int(tokens.max()) < tok.vocab_size
    decoded = tok.decode(tokens)
    assert decoded.shape == images.shape and decoded.dtype == torch.float32
    assert float(decoded.abs().max()) <= 1
    assert torch.equal(tok.decode(tokens), decoded)  # seeded initial noise: deterministic
    other = tok.decode(tokens, generator=torch.Generator().manual_seed(123))
    assert not torch.equal(other, decoded)

    tok.save_pretrained(tmp_path / "tok")
    loaded = ImageTokenizer.from_pretrained(tmp_path / "tok")
    assert torch.equal(loaded.encode(images), tokens)
    assert torch.equal(loaded.decode(tokens), decoded)


def test_epsilon_objective_matches_a_manual_ddpm_loss():
    torch.manual_seed(0)
    tok = ImageTokenizer(toy_config("rgb_diffusion", "diffusion.num_train_timesteps=50"))
    dec = tok.diffusion
    latents = torch.randn(2, tok.quantizer.dim, *tok.grid_size)
    target = random_images(tok, n=2)
    torch.manual_seed(1)
    loss, _ = dec.loss(latents, target)
    # replay the same randomness: noise then timesteps
    torch.manual_seed(1)
    noise = torch.randn_like(target)
    t = torch.randint(0, 50, (2,))
    alpha = dec._train_scheduler.alphas_cumprod[t].view(2, 1, 1, 1)
    noisy = alpha.sqrt() * target + (1 - alpha).sqrt() * noise
    pred = dec.denoise(noisy, t, latents)
    torch.testing.assert_close(loss, ((pred - noise) ** 2).mean(), rtol=1e-4, atol=1e-6)
