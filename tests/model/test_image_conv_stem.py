"""The conv_image patch stem: puts the given patches back on their image (absent ones zero, flagged),
sees across patches but only given ones, matches a plain CNN reference, trains, saves, refuses bad sides."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fourm_testing import TOY_MODALITIES, backward_and_reload, patch_batch, toy_config

from fourm.core.patches import patchify
from fourm.errors import FourmError
from fourm.model import FourM, ModalityConfig
from fourm.model.patch_stem import ImageConvStem, build_patch_stem, reset_patch_stem

PIX = 4 * 4 * 3  # 4 x 4 x 3 patches on a 4 x 4 grid: 16 x 16 images
MODS = {**TOY_MODALITIES, "pix": ModalityConfig("image", 256, 16, input=True, target=False, patch_dim=PIX)}
PIX_INDEX = list(MODS).index("pix")


def image_model(seed: int = 0) -> FourM:
    torch.manual_seed(seed)
    return FourM(toy_config(modalities=MODS, patch_stem="conv_image", patch_stem_width=8)).eval()


def batch(seed: int = 0):
    return patch_batch(PIX_INDEX, PIX, seed)


def test_given_patches_go_back_to_their_place_on_the_image():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (16, 16, 3)).astype(np.float32)
    patches = torch.from_numpy(patchify(image, 4))  # (16, 48)
    cells = torch.tensor([[2, 7, 9, 0]])
    here = torch.tensor([[True, True, True, False]])
    stem = ImageConvStem(PIX, 16, channels=3, width=4, length=16)
    out = stem.images(patches[cells.clamp(max=15)], cells, here)[0]  # (4, 16, 16)
    given = np.zeros((16, 16), dtype=bool)
    for c in (2, 7, 9):
        given[4 * (c // 4) : 4 * (c // 4) + 4, 4 * (c % 4) : 4 * (c % 4) + 4] = True
    expected = np.where(given[..., None], image, 0.0).transpose(2, 0, 1)
    torch.testing.assert_close(out[:3], torch.from_numpy(expected))
    assert torch.equal(out[3], torch.from_numpy(given.astype(np.float32)))  # cell 0 is a row, but not given


def test_stem_matches_a_plain_cnn_reference():
    stem = ImageConvStem(PIX, 32, channels=3, width=8, length=16)
    levels = torch.rand(2, 16, PIX) * 2 - 1
    position = torch.arange(16).expand(2, 16)
    here = torch.ones(2, 16, dtype=torch.bool)
    here[1, 5:] = False
    out = stem.embed_given(levels, position, here)
    assert out.shape == (21, 32) and len(stem.convs) == 3  # conv, then 2 halvings (4 px -> 1 per patch)
    x = stem.images(levels, position, here)
    for conv in stem.convs:
        x = F.gelu(F.conv2d(x, conv.weight, conv.bias, stride=conv.stride, padding=1))
    cells = x.permute(0, 2, 3, 1).reshape(2, 16, -1)
    ref = F.linear(F.layer_norm(cells, (cells.shape[-1],), stem.norm.weight, stem.norm.bias), stem.proj.weight, stem.proj.bias)
    ref = ref + F.linear(levels, stem.linear.weight, stem.linear.bias)  # plus the patch's own projection
    torch.testing.assert_close(out, torch.cat([ref[0], ref[1, :5]]), rtol=1e-5, atol=1e-5)


def test_a_token_sees_given_neighbours_and_nothing_else():
    m, b = image_model(), batch()
    args = (b.enc_tokens, b.enc_modality, b.enc_position, b.enc_valid)
    x = m.embeddings.encoder_input(*args, b.enc_patches)
    changed = b.enc_patches.clone()
    changed[0, 2] = 255 - changed[0, 2]  # sample 0's cell 7, diagonal neighbour of cell 2
    y = m.embeddings.encoder_input(*args, changed)
    differs = ((x - y).abs().amax(-1) > 1e-6).tolist()
    assert differs[0][1] and differs[0][2]  # cell 2 sees its neighbour; cell 7 itself changed
    assert not differs[0][0] and differs[1] == [False] * 5  # the rgb token, the other sample
    order = [0, 3, 1, 2, 4]  # the same given patches in another row order: the same tokens
    z = m.embeddings.encoder_input(*(t[:, order] for t in args), b.enc_patches[:, order])
    torch.testing.assert_close(z[0], x[0, order], rtol=1e-5, atol=1e-6)


def test_stem_output_starts_at_the_position_scale():
    stem = build_patch_stem("conv_image", 192, 256, channels=3, width=16, length=64)
    reset_patch_stem(stem, position_scale=0.25)
    levels = torch.randint(0, 256, (8, 64, 192), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1
    with torch.no_grad():
        out = stem.embed_given(levels, torch.arange(64).expand(8, 64), torch.ones(8, 64, dtype=torch.bool))
    assert out.pow(2).mean().item() == pytest.approx(0.5 * 0.25**2, rel=0.15)


def test_image_stem_trains_and_round_trips(tmp_path):
    stem, loaded = backward_and_reload(image_model(), batch(), tmp_path / "m")
    assert stem.convs[0].weight.grad.abs().sum() > 0 and stem.proj.weight.grad.abs().sum() > 0
    assert stem.linear.weight.grad.abs().sum() > 0
    assert loaded.config.patch_stem == "conv_image" and isinstance(loaded.embeddings.patch_embed["pix"], ImageConvStem)


def test_patch_sides_that_do_not_halve_to_one_are_refused():
    mods = {**TOY_MODALITIES, "pix": ModalityConfig("image", 256, 16, input=True, target=False, patch_dim=6 * 6 * 3)}
    with pytest.raises(FourmError, match="modality 'pix': a conv_image patch stem needs a patch side that is a power of 2, got 6"):
        replace(toy_config(modalities=mods), patch_stem="conv_image").validate()
    with pytest.raises(FourmError, match="power of 2 on a square grid"):
        ImageConvStem(PIX, 16, channels=3, width=4, length=12)
