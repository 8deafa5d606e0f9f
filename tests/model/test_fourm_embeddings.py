"""Packed embeddings equal a per-token naive sum of token, position and modality embeddings."""

import torch
from fourm_testing import toy_config, two_sample_batch

from fourm.model import PackedEmbeddings
from fourm.model.pos_embed import sincos_table_1d, sincos_table_2d


def naive_position(config, modality: int, position: int) -> torch.Tensor:
    mod = list(config.modalities.values())[modality]
    table = sincos_table_2d(mod.grid_size, config.dim) if mod.kind == "image" else sincos_table_1d(mod.num_positions, config.dim)
    return table[position]


def test_encoder_and_decoder_inputs_equal_naive_sums():
    config = toy_config()
    emb = PackedEmbeddings(config)
    batch = two_sample_batch()
    vocab = [m.vocab_size for m in config.modalities.values()]
    enc = emb.encoder_input(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid)
    dec = emb.decoder_input(batch.dec_input, batch.dec_modality, batch.dec_position, batch.dec_valid)
    for b in range(2):
        for n in range(batch.enc_tokens.shape[1]):
            if batch.enc_valid[b, n]:
                m, p, t = (int(x[b, n]) for x in (batch.enc_modality, batch.enc_position, batch.enc_tokens))
                want = emb.enc_tokens[sum(vocab[:m]) + t] + naive_position(config, m, p) + emb.enc_modality[m]
                assert torch.allclose(enc[b, n], want, atol=1e-6)
        for n in range(batch.dec_input.shape[1]):
            if batch.dec_valid[b, n]:
                m, p, t = (int(x[b, n]) for x in (batch.dec_modality, batch.dec_position, batch.dec_input))
                tok = emb.dec_tokens[t] if m == 2 else emb.mask_token  # caption is the only sequence
                want = tok + naive_position(config, m, p) + emb.dec_modality[m]
                assert torch.allclose(dec[b, n], want, atol=1e-6)


def test_position_tables_are_fixed_buffers():
    emb = PackedEmbeddings(toy_config())
    assert "pos_table" not in emb.state_dict()
    assert all("pos" not in n for n, _ in emb.named_parameters())
    assert emb.pos_table.shape == (16 + 9 + (12 + 1) + 3, 32)  # sequences: length + 1 rows


def test_token_init_std_sets_the_token_tables_only():
    """token_init_std scales the token tables (encoder rows, sequences' decoder inputs) at init; the
    modality rows and the mask token keep init_std; None keeps every table at init_std."""
    import pytest

    from fourm.errors import FourmError

    torch.manual_seed(0)
    wide = PackedEmbeddings(toy_config().replace(dim=256, token_init_std=0.5))
    assert abs(float(wide.enc_tokens.detach().std()) - 0.5) < 0.03
    assert abs(float(wide.dec_tokens.detach().std()) - 0.5) < 0.03
    assert float(wide.enc_modality.detach().std()) < 0.03 and float(wide.mask_token.detach().std()) < 0.03
    plain = PackedEmbeddings(toy_config().replace(dim=256))
    assert float(plain.enc_tokens.detach().std()) < 0.03 and float(plain.dec_tokens.detach().std()) < 0.03
    for bad in (0.0, -1.0, 11.0):
        with pytest.raises(FourmError, match="token_init_std"):
            toy_config().replace(token_init_std=bad).validate()


def test_a_tied_head_reads_large_token_rows_at_init_scale():
    """With tie_embeddings and token_init_std 1.0 the head is the token rows x init_std / token_init_std:
    logits start as small as an untied head's (unscaled, their std would be ~sqrt(dim))."""
    from fourm.model import FourM

    torch.manual_seed(0)
    model = FourM(toy_config(dim=256, tie_embeddings=True, token_init_std=1.0))
    assert model.tied_head_scale == 0.02
    rows = model.embeddings.output_embeddings([0])[0]
    assert torch.equal(model.head_weight("rgb"), rows * 0.02)
    logits = model(two_sample_batch())
    assert float(torch.cat([v.flatten() for v in logits.values()]).detach().std()) < 1.0
    assert FourM(toy_config(tie_embeddings=True)).tied_head_scale == 1.0  # saved tied models read as before
