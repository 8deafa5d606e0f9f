"""Encoder / decoder / cross-attention masks against hand-built loops."""

import torch
from fourm_testing import two_sample_batch

from fourm.model.masks import cross_attention_mask, decoder_attention_mask, encoder_attention_mask

CAUSAL = torch.tensor([False, False, True, False])  # rgb, depth, caption (sequence), meta


def naive_decoder_mask(modality, position, valid, causal):
    b, n = modality.shape
    out = torch.zeros(b, 1, n, n, dtype=torch.bool)
    for s in range(b):
        for i in range(n):
            for j in range(n):
                if not valid[s, i]:
                    out[s, 0, i, j] = i == j
                    continue
                same = modality[s, i] == modality[s, j]
                order_ok = (not causal[modality[s, i]]) or position[s, j] <= position[s, i]
                out[s, 0, i, j] = bool(same and valid[s, j] and order_ok)
    return out


def test_decoder_mask_equals_naive_loops():
    batch = two_sample_batch()
    got = decoder_attention_mask(batch.dec_modality, batch.dec_position, batch.dec_valid, CAUSAL)
    want = naive_decoder_mask(batch.dec_modality, batch.dec_position, batch.dec_valid, CAUSAL)
    assert got.shape == (2, 1, 8, 8)
    assert torch.equal(got, want)
    # spot checks: caption token at position 1 sees positions 0, 1 (not 2); rgb tokens see each other
    assert got[0, 0, 4].tolist() == [False, False, False, True, True, False, False, False]
    assert got[0, 0, 0, 1] and got[0, 0, 1, 0]


def test_decoder_mask_causal_uses_positions_not_slots():
    # caption tokens packed out of order: slot order 2, 0, 1
    modality = torch.tensor([[2, 2, 2]])
    position = torch.tensor([[2, 0, 1]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    got = decoder_attention_mask(modality, position, valid, CAUSAL)[0, 0]
    assert got.tolist() == [[True, True, True], [False, True, False], [False, True, True]]


def test_incremental_decoder_mask_matches_full_mask_rows():
    batch = two_sample_batch()
    mod, pos, valid = batch.dec_modality, batch.dec_position, batch.dec_valid
    full = decoder_attention_mask(mod, pos, valid, CAUSAL)
    last = decoder_attention_mask(mod[:, 5:], pos[:, 5:], valid[:, 5:], CAUSAL, mod, pos, valid)
    assert torch.equal(last, full[:, :, 5:])


def test_encoder_mask():
    valid = torch.tensor([[True, True, False], [False, False, False]])
    got = encoder_attention_mask(valid)[:, 0]
    want = torch.tensor([
        [[True, True, False], [True, True, False], [False, False, True]],
        [[True, False, False], [False, True, False], [False, False, True]],
    ])
    assert torch.equal(got, want)


def test_every_row_allows_a_key():
    batch = two_sample_batch()
    for mask in (
        encoder_attention_mask(batch.enc_valid),
        decoder_attention_mask(batch.dec_modality, batch.dec_position, batch.dec_valid, CAUSAL),
        cross_attention_mask(torch.tensor([[True, False], [False, False]])),
    ):
        assert mask.any(dim=-1).all()


def test_cross_mask_valid_keys_and_empty_context():
    got = cross_attention_mask(torch.tensor([[True, False, True], [False, False, False]]))
    assert got.shape == (2, 1, 1, 3)
    assert got[0, 0, 0].tolist() == [True, False, True]
    assert got[1, 0, 0].tolist() == [True, True, True]  # nothing valid: all (zeroed) keys
