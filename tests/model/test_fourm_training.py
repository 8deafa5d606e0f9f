"""Every parameter is trained (all presets at toy width, all embedding options) and a tiny model
overfits a fixed batch."""

import math

import pytest
import torch
from fourm_testing import TOY_MODALITIES, toy_config, two_sample_batch

from fourm.model import PRESETS, FourM, FourMConfig
from fourm.model.synthetic import random_batch


def assert_every_parameter_has_gradient(model: FourM, batch) -> None:
    loss, _ = model.loss(batch)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_at_toy_width_trains_every_parameter(preset):
    heads = PRESETS[preset]["num_heads"]
    config = FourMConfig.preset(preset, TOY_MODALITIES, dim=8 * heads)
    assert config.enc_depth == PRESETS[preset]["enc_depth"]
    model = FourM(config)
    assert_every_parameter_has_gradient(model, random_batch(config, 3, 10, 12, seed=1))


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("qk_norm", [False, True])
def test_embedding_options_train_every_parameter(tie, share, qk_norm):
    config = toy_config(tie_embeddings=tie, share_encoder_decoder_embeddings=share, qk_norm=qk_norm)
    model = FourM(config)
    assert (model.output_weight is None) == tie
    assert (model.embeddings.dec_tokens is None) == share
    if qk_norm:
        assert any("q_norm" in n for n, _ in model.named_parameters())
    assert_every_parameter_has_gradient(model, two_sample_batch())


def test_tied_heads_are_the_input_embeddings():
    model = FourM(toy_config(tie_embeddings=True))
    rgb = model.head_weight("rgb")
    assert rgb.data_ptr() == model.embeddings.enc_tokens.data_ptr()  # rgb rows come first
    caption = model.head_weight("caption")
    assert caption.data_ptr() == model.embeddings.dec_tokens.data_ptr()  # decoder table of sequences
    assert model.num_parameters(breakdown=True)["heads"] == 0


def test_dropout_only_in_training():
    model = FourM(toy_config(dropout=0.5))
    batch = two_sample_batch()
    model.eval()
    assert torch.equal(model(batch)["rgb"], model(batch)["rgb"])
    model.train()
    assert not torch.equal(model(batch)["rgb"], model(batch)["rgb"])


def test_tiny_model_overfits_a_fixed_batch():
    config = toy_config(dim=64, num_heads=4)
    model = FourM(config)
    batch = random_batch(config, 4, 12, 16, seed=3)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _ in range(150):
        loss, _ = model.loss(batch)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    smallest_vocab = min(m.vocab_size for m in config.modalities.values())
    assert first > 0.8 * math.log(smallest_vocab)
    assert loss.item() < 0.1 * math.log(smallest_vocab)
