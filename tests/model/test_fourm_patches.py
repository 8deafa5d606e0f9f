"""Patch modalities in the model: pixel patches embedded linearly in place of token ids."""

from __future__ import annotations

import pytest
import torch
from fourm_testing import TOY_MODALITIES, pack, toy_config

from fourm.errors import FourmError
from fourm.model import FourM, ModalityConfig

PIX = 4 * 4 * 3  # 4x4 rgb patches
MODS = {**TOY_MODALITIES, "pix": ModalityConfig("image", 256, 16, input=True, target=False, patch_dim=PIX)}
PIX_INDEX = list(MODS).index("pix")


def model(seed: int = 0) -> FourM:
    torch.manual_seed(seed)
    m = FourM(toy_config(modalities=MODS)).eval()
    with torch.no_grad():  # non-trivial bias, so the reference checks it too
        m.embeddings.patch_embed["pix"].bias.normal_(std=0.1)
    return m


def batch_with_patches(seed: int = 0):
    """Two samples: rgb tokens + pix patches (sample 0), pix only (sample 1); targets depth."""
    s0 = {"enc": [(0, 0, 5), (PIX_INDEX, 2, 0), (PIX_INDEX, 7, 0), (2, 0, 11)], "dec": [(1, 0, 0, 3), (1, 4, 0, 7)]}
    s1 = {"enc": [(PIX_INDEX, 0, 0), (PIX_INDEX, 15, 0)], "dec": [(1, 1, 0, 2)]}
    batch = pack([s0, s1], ne=5)
    g = torch.Generator().manual_seed(seed)
    patches = torch.randint(0, 256, (2, 5, PIX), generator=g, dtype=torch.uint8)
    is_pix = batch.enc_valid & (batch.enc_modality == PIX_INDEX)
    batch.enc_patches = patches * is_pix[..., None]
    return batch


def test_patch_embedding_matches_reference():
    m, batch = model(), batch_with_patches()
    emb = m.embeddings
    x = emb.encoder_input(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches)
    proj = emb.patch_embed["pix"]
    for b in range(2):
        for n in range(5):
            if not batch.enc_valid[b, n]:
                continue
            mod, pos = int(batch.enc_modality[b, n]), int(batch.enc_position[b, n])
            if mod == PIX_INDEX:
                values = batch.enc_patches[b, n].float() / 127.5 - 1.0
                content = values @ proj.weight.T + proj.bias
            else:
                offset = sum(c.table_rows for c in list(MODS.values())[:mod])
                content = emb.enc_tokens[offset + int(batch.enc_tokens[b, n])]
            pos_row = emb.pos_table[int(emb.pos_offsets[mod]) + pos]
            expected = content + pos_row + emb.enc_modality[mod]
            torch.testing.assert_close(x[b, n], expected, rtol=1e-5, atol=1e-5)


def test_patch_modality_has_no_table_rows_and_no_head():
    m = model()
    assert m.embeddings.enc_tokens.shape[0] == sum(c.vocab_size for n, c in MODS.items() if n != "pix")
    assert "pix" not in m.head_weights()


def test_encoder_reads_patches_not_token_ids():
    m, batch = model(), batch_with_patches()
    base = m.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches)
    tokens = batch.enc_tokens.clone()
    tokens[batch.enc_modality == PIX_INDEX] = 200  # ignored at patch slots (within the 256 levels)
    same = m.encode(tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches)
    torch.testing.assert_close(same, base)
    other = batch.enc_patches.clone()
    other[0, 1] = 255 - other[0, 1]
    changed = m.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, other)
    assert not torch.allclose(changed[0], base[0])
    torch.testing.assert_close(changed[1], base[1])  # the other sample is untouched


def test_loss_trains_the_patch_projection():
    m, batch = model().train(), batch_with_patches()
    loss, _ = m.loss(batch)
    loss.backward()
    grad = m.embeddings.patch_embed["pix"].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_missing_or_misshapen_patches_are_refused():
    m, batch = model(), batch_with_patches()
    args = (batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid)
    with pytest.raises(FourmError, match="enc_patches is None"):
        m.encode(*args)
    with pytest.raises(FourmError, match="enc_patches must be"):
        m.encode(*args, batch.enc_patches[..., :10])
    plain = FourM(toy_config())
    with pytest.raises(FourmError, match="no patch modality"):
        plain.encode(*args[:3], torch.zeros_like(args[3]), batch.enc_patches)


def test_patch_modality_cannot_be_a_decoder_target():
    m, batch = model(), batch_with_patches()
    batch.dec_modality[0, 0] = PIX_INDEX
    with pytest.raises(FourmError, match="'pix' is in the decoder but is not a target"):
        m.loss(batch)


@pytest.mark.parametrize(
    "mod, message",
    [
        (ModalityConfig("image", 256, 16, target=True, patch_dim=PIX), "input-only image"),
        (ModalityConfig("sequence", 256, 16, target=False, patch_dim=PIX), "input-only image"),
        (ModalityConfig("image", 256, 16, target=False, patch_dim=-1), "patch_dim must be >= 0"),
    ],
)
def test_config_rules(mod, message):
    with pytest.raises(FourmError, match=message):
        toy_config(modalities={**TOY_MODALITIES, "pix": mod}).validate()


def test_save_and_load_round_trip(tmp_path):
    m, batch = model(), batch_with_patches()
    m.save_pretrained(tmp_path / "m")
    loaded = FourM.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.modalities["pix"].patch_dim == PIX
    args = (batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches)
    torch.testing.assert_close(loaded.encode(*args), m.encode(*args))


def test_patch_projection_starts_at_the_position_scale():
    """Uniform pixels through a fresh projection: per-feature mean square ~ the sin-cos table's (1/2),
    so pixel content is not drowned by the positions as under a 0.02 init (mean square ~0.0016)."""
    from fourm.model.patch_stem import patch_init_std

    emb = model().embeddings
    proj = emb.patch_embed["pix"]
    assert torch.equal(FourM(toy_config(modalities=MODS)).embeddings.patch_embed["pix"].bias, torch.zeros(proj.out_features))
    assert proj.weight.std().item() == pytest.approx(patch_init_std(PIX), rel=0.1)
    pixels = torch.randint(0, 256, (4096, PIX), generator=torch.Generator().manual_seed(0)).float() * (2.0 / 255.0) - 1.0
    out = pixels @ proj.weight.T  # (N, D) without the bias
    position_ms = emb.pos_table.pow(2).mean().item()
    assert position_ms == pytest.approx(0.5, abs=1e-6)
    assert out.pow(2).mean().item() == pytest.approx(position_ms, rel=0.25)
    assert patch_init_std(192) == pytest.approx((0.5 / (192 / 3)) ** 0.5)


def test_position_scale_scales_positions_and_patch_init_together():
    from dataclasses import replace

    base = FourM(toy_config(modalities=MODS)).embeddings
    torch.manual_seed(0)
    scaled = FourM(replace(toy_config(modalities=MODS), position_scale=0.25)).embeddings
    torch.testing.assert_close(scaled.pos_table, 0.25 * base.pos_table)
    assert scaled.pos_table.pow(2).mean().item() == pytest.approx(0.5 * 0.25**2, rel=1e-5)
    assert scaled.patch_embed["pix"].weight.std().item() == pytest.approx(
        0.25 * base.patch_embed["pix"].weight.std().item(), rel=0.1
    )
    with pytest.raises(FourmError, match="position_scale"):
        replace(toy_config(modalities=MODS), position_scale=0.0).validate()
