"""A new patch stem for a trained FourM (model.init_from + model.patch_stem): every other weight
carried over bit-exactly, the stem counted as new weights for the frozen stage, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_testing import PIX, save_trained_like, tiny_config, write_pixel_tokens

from fourm.errors import FourmError
from fourm.model import FourM, ModalityConfig
from fourm.model.patch_stem import ImageConvStem
from fourm.training import train
from fourm.training.finetune import PATCH_PREFIX, load_finetune_model, replace_patch_stem

MODS = {
    "rgb": ModalityConfig("image", 32, 16),
    "depth": ModalityConfig("image", 16, 16),
    "caption": ModalityConfig("sequence", 64, 12),
    PIX: ModalityConfig("image", 256, 16, target=False, patch_dim=12),
}
ARCH = {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return save_trained_like(MODS, False, ARCH, tmp_path_factory.mktemp("base") / "model")


@pytest.fixture(scope="module")
def pix_tokens(tmp_path_factory) -> Path:
    return write_pixel_tokens(tmp_path_factory.mktemp("pix") / "tokens")


def test_new_stem_keeps_every_other_weight_and_output(base_dir):
    old = FourM.from_pretrained(base_dir)
    model, masks = load_finetune_model(base_dir, [], seed=0, patch_stem="conv_image")
    assert model.config.patch_stem == "conv_image" and isinstance(model.embeddings.patch_embed[PIX], ImageConvStem)
    stem_params = {k for k, _ in model.named_parameters() if k.startswith(PATCH_PREFIX) and ".linear." not in k}
    assert set(masks) == stem_params and all(m.all() for m in masks.values())
    # the old linear projection is the new stem's linear path; the CNN path starts at zero
    stem = model.embeddings.patch_embed[PIX]
    assert torch.equal(stem.linear.weight, old.embeddings.patch_embed[PIX].weight)
    assert not stem.proj.weight.any() and not stem.proj.bias.any()
    old_state, state = old.state_dict(), model.state_dict()
    assert {k for k in old_state if not k.startswith(PATCH_PREFIX)} == {k for k in state if not k.startswith(PATCH_PREFIX)}
    for key, value in old_state.items():
        if not key.startswith(PATCH_PREFIX):
            assert torch.equal(state[key], value), f"{key} changed"
    # a batch without pixel patches is encoded exactly as before
    torch.manual_seed(1)
    tokens = torch.randint(0, 16, (2, 16))
    mod = torch.full((2, 16), list(MODS).index("depth"))
    pos = torch.arange(16).expand(2, 16)
    valid = torch.ones(2, 16, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(old.encode(tokens, mod, pos, valid), model.encode(tokens, mod, pos, valid))
    # and a batch with pixel patches too: the new model starts as the old one
    patches = torch.randint(0, 256, (2, 16, 12), dtype=torch.uint8)
    mod = mod.clone()
    mod[:, 8:] = list(MODS).index(PIX)
    with torch.no_grad():
        a, b = old.encode(tokens, mod, pos, valid, patches), model.encode(tokens, mod, pos, valid, patches)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_same_seed_same_stem_other_seed_other_stem(base_dir):
    a, _ = replace_patch_stem(FourM.from_pretrained(base_dir), "conv", seed=3)
    b, _ = replace_patch_stem(FourM.from_pretrained(base_dir), "conv", seed=3)
    c, _ = replace_patch_stem(FourM.from_pretrained(base_dir), "conv", seed=4)
    stem = [k for k in a.state_dict() if k.startswith(PATCH_PREFIX) and k.endswith("weight")]
    assert stem and all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in stem)
    assert not all(torch.equal(a.state_dict()[k], c.state_dict()[k]) for k in stem)


def test_bad_stem_requests_are_one_line_errors(base_dir, tmp_path, token_data):
    cases = [
        (lambda: load_finetune_model(base_dir, [], patch_stem="linear"), "already has a 'linear' patch stem"),
        (lambda: load_finetune_model(base_dir, [], patch_stem="resnet"), r"model.patch_stem: invalid value .*'resnet'"),
        (lambda: replace_patch_stem(FourM.from_pretrained(
            save_trained_like({k: MODS[k] for k in ("rgb", "caption")}, False, ARCH, tmp_path / "np")), "conv"),
         "no pixel-patch modality"),  # fmt: skip
        (lambda: tiny_config(token_data, tmp_path, model={"patch_stem": "conv"}), "replaces the stem of a trained model"),
    ]
    for call, match in cases:
        with pytest.raises(FourmError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


def test_frozen_stage_trains_only_the_new_stem(base_dir, pix_tokens, tmp_path):
    section = {"overrides": {}, "init_from": str(base_dir), "patch_stem": "conv_image", "freeze_trunk_steps": 3}
    cfg = tiny_config(pix_tokens, tmp_path / "run", model=section, steps=6, optim={"warmup_steps": 1},
                      masking={"input_budget": 24})  # fmt: skip
    start, masks = load_finetune_model(base_dir, [], seed=cfg.seed, patch_stem="conv_image")
    start = {k: v.clone() for k, v in start.state_dict().items()}
    frozen = train(cfg, stop_at=3).model.state_dict()
    for key, value in start.items():
        if key in masks:
            assert not torch.equal(frozen[key], value), f"{key}: the new stem did not train"
        else:
            assert torch.equal(frozen[key], value), f"{key} moved while frozen"
    result = train(cfg, resume="auto")  # then everything trains, and the saved model has the new stem
    assert not torch.equal(result.model.state_dict()["encoder.0.attn.qkv.weight"], start["encoder.0.attn.qkv.weight"])
    assert FourM.from_pretrained(result.final_model).config.patch_stem == "conv_image"
