"""FourM options added to reproduce ml-4m's computation; each defaults to the previous behaviour."""

from __future__ import annotations

import pytest
import torch

from fourm.errors import FourmError
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.pos_embed import sincos_table_2d

DEFAULT_KEYS_PREFIXES = ("embeddings.", "encoder.", "enc_norm.", "decoder.", "dec_norm.", "output_weight")


def _mods(**learned):
    return {
        "rgb": ModalityConfig("image", 32, 16, positions=learned.get("rgb", "sincos")),
        "glob": ModalityConfig("image", 16, 4, positions=learned.get("glob", "sincos")),
        "cap": ModalityConfig("sequence", 24, 8),
    }


def _config(**kw) -> FourMConfig:
    return FourMConfig(dim=32, enc_depth=1, dec_depth=1, num_heads=2, modalities=_mods(**kw.pop("learned", {})), **kw)


def _rows(model: FourM, name: str, positions: list[int]):
    i = model.config.modality_index(name)
    n = len(positions)
    return (torch.zeros(1, n, dtype=torch.long), torch.full((1, n), i), torch.tensor([positions]),
            torch.ones(1, n, dtype=torch.bool))


def test_defaults_keep_the_saved_format():
    """A config without the new fields loads; the default model has no new parameters."""
    cfg = FourMConfig.from_dict({"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2,
                                 "modalities": {k: v.to_dict() for k, v in _mods().items()}})
    assert (cfg.mlp_hidden_dim, cfg.share_modality_embeddings, cfg.context_projection, cfg.context_norm) == (0, False, False, False)
    assert all(m.positions == "sincos" for m in cfg.modalities.values())
    keys = FourM(cfg).state_dict().keys()
    assert all(k.startswith(DEFAULT_KEYS_PREFIXES) for k in keys)
    assert not any("context" in k or "positions" in k for k in keys)
    assert "embeddings.dec_modality" in keys


def test_mlp_hidden_dim_overrides_ratio():
    assert _config().mlp_hidden == 64  # 8/3 * 32 = 85 rounded to a multiple of 64
    model = FourM(_config(mlp_hidden_dim=170))
    assert model.config.mlp_hidden == 170
    assert model.encoder[0].mlp.gate_up.weight.shape == (340, 32)
    assert model.decoder[0].mlp.down.weight.shape == (32, 170)
    with pytest.raises(FourmError, match="mlp_hidden_dim"):
        _config(mlp_hidden_dim=-1).validate()


def test_share_modality_embeddings_uses_one_table():
    model = FourM(_config(share_modality_embeddings=True))
    assert model.embeddings.dec_modality is None
    assert "embeddings.dec_modality" not in model.state_dict()
    emb = model.embeddings
    _, mod, pos, valid = _rows(model, "rgb", [0, 5])
    before = emb.decoder_input(torch.zeros_like(pos), mod, pos, valid)
    with torch.no_grad():
        emb.enc_modality[mod[0, 0]] += 1.0
    after = emb.decoder_input(torch.zeros_like(pos), mod, pos, valid)
    torch.testing.assert_close(after - before, torch.ones_like(before))


def test_learned_positions_per_side():
    model = FourM(_config(learned={"glob": "learned"}))
    emb = model.embeddings
    assert emb.enc_positions.shape == emb.dec_positions.shape == (4, 32)  # only glob's rows
    with torch.no_grad():
        emb.enc_positions.copy_(torch.randn(4, 32))
        emb.dec_positions.copy_(torch.randn(4, 32))
    tok, mod, pos, valid = _rows(model, "glob", [0, 3])
    _, enc_emb = emb.encoder_parts(tok, mod, pos, valid)
    expected = emb.enc_positions[[0, 3]] + emb.enc_modality[mod[0, 0]]
    torch.testing.assert_close(enc_emb[0], expected)
    dec = emb.decoder_input(tok, mod, pos, valid)[0]
    torch.testing.assert_close(dec, emb.dec_positions[[0, 3]] + emb.dec_modality[mod[0, 0]] + emb.mask_token)
    # a sin-cos modality next to it is unchanged
    tok, mod, pos, valid = _rows(model, "rgb", [0, 7])
    _, enc_emb = emb.encoder_parts(tok, mod, pos, valid)
    torch.testing.assert_close(enc_emb[0], sincos_table_2d(4, 32)[[0, 7]] + emb.enc_modality[mod[0, 0]])
    with pytest.raises(FourmError, match="positions must be sincos or learned"):
        ModalityConfig("image", 4, 4, positions="rope").check("x")


def test_context_projection_adds_position_and_modality_embeddings():
    model = FourM(_config(context_projection=True)).eval()
    assert "context_proj.bias" in model.state_dict()
    tokens = torch.tensor([[3, 4, 5, 0]])
    mod = torch.full((1, 4), model.config.modality_index("rgb"))
    pos = torch.tensor([[0, 1, 2, 0]])
    valid = torch.tensor([[True, True, True, False]])
    with torch.no_grad():
        plain = model.encode(tokens, mod, pos, valid, decoder_context=False)
        ctx = model.encode(tokens, mod, pos, valid)
        _, emb = model.embeddings.encoder_parts(tokens, mod, pos, valid)
    expected = (model.context_proj(plain) + emb).masked_fill(~valid[..., None], 0.0)
    torch.testing.assert_close(ctx, expected)
    assert torch.all(ctx[0, 3] == 0)
    # without the option, both are the encoder output
    base = FourM(_config()).eval()
    with torch.no_grad():
        torch.testing.assert_close(base.encode(tokens, mod, pos, valid), base.encode(tokens, mod, pos, valid, decoder_context=False))


def test_context_norm_normalises_the_context_before_keys_values():
    model = FourM(_config(context_norm=True)).eval()
    block = model.decoder[0]
    with torch.no_grad():
        block.context_norm.weight.copy_(torch.rand(32) + 0.5)
    context = torch.randn(1, 3, 32) * 5 + 2
    k, v = block.project_context(context)
    k_ref, v_ref = block.cross_attn.project_kv(block.context_norm(context))
    torch.testing.assert_close(k, k_ref)
    assert not torch.allclose(k, block.cross_attn.project_kv(context)[0])
    # cached and uncached decoding agree
    valid = torch.ones(1, 3, dtype=torch.bool)
    _, mod, pos, dvalid = _rows(model, "rgb", [1, 2])
    with torch.no_grad():
        full = model.decode(context, valid, torch.zeros_like(pos), mod, pos, dvalid)
        cached = model.decode(None, None, torch.zeros_like(pos), mod, pos, dvalid, cache=model.start_cache(context, valid))
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    assert isinstance(FourM(_config()).decoder[0].context_norm, torch.nn.Identity)


def test_options_round_trip_through_save_pretrained(tmp_path):
    cfg = _config(mlp_hidden_dim=96, share_modality_embeddings=True, context_projection=True, context_norm=True,
                  learned={"glob": "learned"})
    model = FourM(cfg)
    model.save_pretrained(tmp_path / "m")
    again = FourM.from_pretrained(tmp_path / "m")
    assert again.config == cfg
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
