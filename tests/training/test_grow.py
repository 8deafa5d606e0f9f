"""A deeper decoder for a trained FourM (model.init_from + model.grow_decoder): the grown model
computes exactly what the old one did, its new blocks are copies with zero outputs that training
moves, the old weights are carried bit-exactly, and bad requests are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_testing import save_trained_like, tiny_config

from fourm.errors import FourmError
from fourm.model import FourM, ModalityConfig
from fourm.training import train
from fourm.training.finetune import load_finetune_model
from fourm.training.grow import ZERO_OUTPUTS, grow_decoder

MODS = {
    "rgb": ModalityConfig("image", 32, 16),
    "depth": ModalityConfig("image", 16, 16),
    "caption": ModalityConfig("sequence", 64, 12),
}
ARCH = {"dim": 32, "enc_depth": 1, "dec_depth": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return save_trained_like(MODS, False, ARCH, tmp_path_factory.mktemp("base") / "model")


def _decode(model: FourM, seed: int = 1) -> torch.Tensor:
    """Decoder output (2, 12, D) of fixed random context and caption inputs (with autograd)."""
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(2, 9, model.config.dim, generator=g)
    inputs = torch.randint(0, 64, (2, 12), generator=g)
    mod = torch.full_like(inputs, list(MODS).index("caption"))
    positions = torch.arange(12).expand(2, 12)
    return model.decode(context, torch.ones(2, 9, dtype=torch.bool), inputs, mod, positions, torch.ones_like(inputs, dtype=torch.bool))


def test_grown_model_computes_what_the_old_one_did(base_dir):
    old = FourM.from_pretrained(base_dir).eval()
    grown, masks = grow_decoder(old, [1, 0])
    assert grown.config.dec_depth == 4
    with torch.no_grad():
        assert torch.equal(_decode(old), _decode(grown.eval()))
    # order: old 0, its copy, old 1, its copy; copies keep the input weights, outputs are zero
    old_state, state = old.state_dict(), grown.state_dict()
    for new_index, source in ((0, 0), (1, 0), (2, 1), (3, 1)):
        for key, value in old.decoder[source].state_dict().items():
            copy = state[f"decoder.{new_index}.{key}"]
            if new_index in (1, 3) and key.startswith(ZERO_OUTPUTS):
                assert not copy.any(), f"decoder.{new_index}.{key} should start at zero"
            else:
                assert torch.equal(copy, value)
    assert set(masks) == {k for k, _ in grown.named_parameters() if k.startswith(("decoder.1.", "decoder.3."))}
    for key, value in old_state.items():
        if not key.startswith("decoder."):
            assert torch.equal(state[key], value), f"{key} changed"


def test_new_blocks_learn(base_dir):
    """The zero output projections get gradients: one step moves the grown model off the old one."""
    grown, _ = grow_decoder(FourM.from_pretrained(base_dir), [1])
    out = _decode(grown).detach()
    _decode(grown).pow(2).sum().backward()
    for name in ("self_attn.proj.weight", "cross_attn.proj.weight", "mlp.down.weight"):
        assert grown.decoder[2].get_parameter(name).grad.abs().sum() > 0, name
    with torch.no_grad():
        grown.decoder[2].mlp.down.weight.add_(0.1)
        assert not torch.allclose(_decode(grown), out)


def test_train_config_grows_and_counts_new_blocks_as_new(base_dir, token_data, tmp_path):
    section = {"overrides": {}, "init_from": str(base_dir), "grow_decoder": [0], "freeze_trunk_steps": 2}
    cfg = tiny_config(token_data, tmp_path / "run", model=section, steps=4, optim={"warmup_steps": 1})
    start, masks = load_finetune_model(base_dir, [], seed=cfg.seed, grow=[0])
    start_state = {k: v.clone() for k, v in start.state_dict().items()}
    trained = train(cfg, stop_at=2).model.state_dict()
    assert masks and all(not torch.equal(trained[k], start_state[k]) for k in masks if k.endswith("proj.weight"))
    for key, value in start_state.items():
        if key not in masks:
            assert torch.equal(trained[key], value), f"{key} moved while the trunk was frozen"
    result = train(cfg, resume="auto")  # then everything trains; the saved model is the grown one
    assert FourM.from_pretrained(result.final_model).config.dec_depth == 3
    assert not torch.equal(result.model.state_dict()["decoder.0.mlp.down.weight"], start_state["decoder.0.mlp.down.weight"])


def test_bad_growth_requests_are_one_line_errors(base_dir, token_data, tmp_path):
    old = FourM.from_pretrained(base_dir)
    cases = [
        (lambda: grow_decoder(old, [2]), r"distinct decoder blocks in 0..1, got \[2\]"),
        (lambda: grow_decoder(old, [0, 0]), "distinct decoder blocks"),
        (lambda: grow_decoder(old, [-1]), "distinct decoder blocks"),
        (lambda: grow_decoder(old, [0.5]), r"got \[0.5\]"),
        (lambda: grow_decoder(old, ["x"]), "distinct decoder blocks"),
        (lambda: tiny_config(token_data, tmp_path, model={"grow_decoder": [0]}), "deepens a trained model"),
    ]
    for call, match in cases:
        with pytest.raises(FourmError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
