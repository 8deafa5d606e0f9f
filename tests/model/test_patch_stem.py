"""The conv patch stem: reads the (p, p, c) patch layout of fourm.core.patches, sees only its own patch,
starts at the position scale, trains, saves, and refuses patches it cannot read."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fourm_testing import TOY_MODALITIES, backward_and_reload, patch_batch, toy_config

from fourm.core.patches import patchify
from fourm.errors import FourmError
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.patch_stem import ConvPatchStem, build_patch_stem, reset_patch_stem

PIX = 4 * 4 * 3
MODS = {**TOY_MODALITIES, "pix": ModalityConfig("image", 256, 16, input=True, target=False, patch_dim=PIX)}
PIX_INDEX = list(MODS).index("pix")


def conv_model(seed: int = 0, **changes) -> FourM:
    torch.manual_seed(seed)
    return FourM(toy_config(modalities=MODS, patch_stem="conv", patch_stem_width=8, **changes)).eval()


def batch(seed: int = 0):
    return patch_batch(PIX_INDEX, PIX, seed)


def test_stem_reads_the_patchify_layout():
    """A delta kernel on input channel k makes conv1 return channel k of the image patch."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    patches = torch.from_numpy(patchify(image, 4)).float()  # (4, 48): 2 x 2 patches of 4 x 4 x 3
    stem = ConvPatchStem(48, 16, channels=3, width=3)
    with torch.no_grad():
        stem.conv1.weight.zero_()
        stem.conv1.bias.zero_()
        for k in range(3):
            stem.conv1.weight[k, k, 1, 1] = 1.0  # output channel k = input channel k
    x = patches.reshape(-1, 4, 4, 3).permute(0, 3, 1, 2)
    seen = stem.conv1(x)  # (4, 3, 4, 4)
    top_right = torch.from_numpy(image[:4, 4:].astype(np.float32)).permute(2, 0, 1)
    torch.testing.assert_close(seen[1], top_right)


def test_stem_matches_a_per_patch_reference():
    stem = ConvPatchStem(PIX, 32, channels=3, width=8)
    levels = torch.rand(5, PIX) * 2 - 1
    out = stem(levels)
    for i in range(5):
        img = levels[i].reshape(4, 4, 3).permute(2, 0, 1)[None]
        h = F.gelu(F.conv2d(F.gelu(F.conv2d(img, stem.conv1.weight, stem.conv1.bias, padding=1)),
                            stem.conv2.weight, stem.conv2.bias, stride=2, padding=1))
        ref = F.linear(F.layer_norm(h.flatten(1), (h[0].numel(),), stem.norm.weight, stem.norm.bias), stem.proj.weight,
                       stem.proj.bias)
        torch.testing.assert_close(out[i], ref[0], rtol=1e-5, atol=1e-5)


def test_a_patch_token_depends_on_its_own_patch_only():
    m, b = conv_model(), batch()
    args = (b.enc_tokens, b.enc_modality, b.enc_position, b.enc_valid)
    x = m.embeddings.encoder_input(*args, b.enc_patches)
    changed = b.enc_patches.clone()
    changed[0, 2] = 255 - changed[0, 2]  # sample 0's second pix patch
    y = m.embeddings.encoder_input(*args, changed)
    differs = (x - y).abs().amax(-1) > 0
    assert differs.tolist() == [[False, False, True, False, False], [False] * 5]


def test_stem_output_starts_at_the_position_scale():
    for scale in (1.0, 0.25):
        stem = build_patch_stem("conv", 192, 256, channels=3, width=32)
        reset_patch_stem(stem, position_scale=scale)
        levels = torch.randint(0, 256, (2048, 192), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1
        with torch.no_grad():
            ms = stem(levels).pow(2).mean().item()
        assert ms == pytest.approx(0.5 * scale**2, rel=0.15)


def test_conv_stem_trains_and_round_trips(tmp_path):
    stem, loaded = backward_and_reload(conv_model(), batch(), tmp_path / "m")
    assert stem.conv1.weight.grad.abs().sum() > 0 and stem.proj.weight.grad.abs().sum() > 0
    assert loaded.config.patch_stem == "conv" and isinstance(loaded.embeddings.patch_embed["pix"], ConvPatchStem)


def test_a_saved_config_without_the_field_loads_as_linear():
    data = toy_config(modalities=MODS).to_dict()
    for key in ("patch_stem", "patch_stem_width", "patch_channels"):
        data.pop(key)
    config = FourMConfig.from_dict(data)
    assert config.patch_stem == "linear"
    assert isinstance(FourM(config).embeddings.patch_embed["pix"], torch.nn.Linear)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"patch_stem": "mlp"}, "patch_stem must be one of linear, conv, conv_image"),
        ({"patch_stem": "conv", "patch_channels": 5}, "modality 'pix': a conv patch stem needs square patches"),
        ({"patch_stem": "conv", "patch_stem_width": 0}, "patch_stem_width must be >= 1"),
    ],
)
def test_bad_stem_configs_are_refused(changes, message):
    with pytest.raises(FourmError, match=message):
        replace(toy_config(modalities=MODS), **changes).validate()
