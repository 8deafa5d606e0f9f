"""Many value tokens: an image as 16 continuous pixel patches (4 x 4 grid of 2 x 2 x 3 values) with a
diffusion head. Masking puts every patch at its slot (inputs and targets), the per-token denoising
loss averages over all masked target patches, and gradients reach the head, the input projection and
the trunk; one decoder pass predicts all 16 tokens (B * 16, C)."""

from __future__ import annotations

import math

import numpy as np
import torch
from fourm_testing import toy_config

from fourm.codecs.value import ValueCodec
from fourm.core.patches import patchify
from fourm.data.masking import Masker, MaskingConfig, SequenceSpecialTokens, collate, make_rng
from fourm.model import FourM, ModalityConfig

L, C = 16, 12
SP = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 19)))
ORDER = ["rgb", "img"]
MODS = {
    "rgb": ModalityConfig("image", 16, 16),
    "img": ModalityConfig("vector", 1, L, value_dim=C, value_head="diffusion"),
}


def _masker(inputs: dict, targets: dict, budget: int = 24) -> Masker:
    cfg = MaskingConfig.from_dict({
        "input_budget": budget, "target_budget": budget,
        "mixture": [{"input_alpha": 0.0, "input_alphas": inputs, "target_alpha": 0.0, "target_alphas": targets}],
    })  # fmt: skip
    return Masker(cfg, ORDER, {"rgb": "image", "img": "vector"}, SP, value_dims={"img": C})


def _sample(seed: int = 0) -> tuple[dict, np.ndarray]:
    image = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    values = ValueCodec("img", L, C).encode([image])[0]  # (L * C,) in [-1, 1]
    return {"rgb": torch.arange(16), "img": values}, image


def test_every_patch_lands_at_its_slot():
    sample, image = _sample()
    patches = patchify(image, 2).astype(np.float32) / 127.5 - 1.0  # (16, 12)
    b = _masker({"rgb": 1.0, "img": 1.0}, {"img": 1.0})(sample, make_rng(0, 0, 0))
    for side in ("enc", "dec"):
        modality, valid, position = (getattr(b, f"{side}_{k}")[0] for k in ("modality", "valid", "position"))
        here = valid & (modality == 1)
        vals = getattr(b, f"{side}_values")[0][here]
        np.testing.assert_allclose(vals.numpy(), patches[position[here].numpy()], atol=1e-6)
    enc_pos = set(b.enc_position[0][b.enc_valid[0] & (b.enc_modality[0] == 1)].tolist())
    dec_pos = set(b.dec_position[0][b.dec_valid[0] & (b.dec_modality[0] == 1)].tolist())
    assert not enc_pos & dec_pos and len(dec_pos) >= 2  # disjoint, many targets


def test_the_loss_is_the_per_token_denoising_loss_over_all_target_patches():
    torch.manual_seed(0)
    m = FourM(toy_config(modalities=MODS))
    m.value_heads["img"].samples_per_token = 1
    b = collate([_masker({"rgb": 1.0}, {"img": 1.0})(_sample(i)[0], make_rng(0, 0, i)) for i in range(3)])
    targets = b.dec_valid & (b.dec_modality == 1)
    assert int(targets.sum()) > 3 * 8  # most of the 16 patches of every sample are targets
    torch.manual_seed(1)
    _, per = m.loss(b)
    with torch.no_grad():
        hidden = m._hidden(b)[targets]  # (n, D), row-major as the model groups them
        torch.manual_seed(1)
        expected = m.value_heads["img"].loss(hidden, b.dec_values[targets])
    assert math.isclose(per["img"], float(expected), rel_tol=1e-5)


def test_gradients_reach_the_head_the_input_projection_and_the_trunk():
    torch.manual_seed(0)
    m = FourM(toy_config(modalities=MODS))
    mk = _masker({"rgb": 1.0, "img": 1.0}, {"rgb": 1.0, "img": 1.0})
    b = collate([mk(_sample(i)[0], make_rng(0, 0, i)) for i in range(4)])
    loss, per = m.loss(b)
    loss.backward()
    assert math.isfinite(loss.item()) and set(per) == {"rgb", "img"}
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.value_heads["img"].parameters())
    assert m.embeddings.value_embed["img"].weight.grad.abs().sum() > 0
    assert sum(float(p.grad.abs().sum()) for p in m.decoder.parameters() if p.grad is not None) > 0


def test_one_decoder_pass_predicts_all_tokens():
    torch.manual_seed(0)
    m = FourM(toy_config(modalities=MODS)).eval()
    with torch.no_grad():
        m.value_heads["img"].out.weight.normal_(std=0.5)
    b = _masker({"rgb": 1.0}, {"img": 1.0}, budget=16)(_sample()[0], make_rng(0, 0, 0))
    pos = torch.arange(L)[None].expand(2, L)
    modality, valid = torch.ones_like(pos), torch.ones_like(pos, dtype=torch.bool)
    with torch.no_grad():
        context = m.encode(b.enc_tokens.expand(2, -1), b.enc_modality.expand(2, -1), b.enc_position.expand(2, -1),
                           b.enc_valid.expand(2, -1), values=b.enc_values.expand(2, -1, -1))  # fmt: skip
        hidden = m.decode(context, b.enc_valid.expand(2, -1), torch.zeros_like(pos), modality, pos, valid)
        out = m.predict_values(hidden, modality, valid, steps=3, generator=torch.Generator().manual_seed(0))[
            "img"
        ]
    assert out.shape == (2 * L, C) and torch.isfinite(out).all()
    assert not torch.allclose(out[:L], out[L:])  # independent noise per token and sample
