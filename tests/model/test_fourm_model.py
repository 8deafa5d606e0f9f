"""FourM forward semantics: isolation between target modalities, causality, padding, loss, caching."""

import math

import pytest
import torch
import torch.nn.functional as F
from fourm_testing import pack, toy_config, two_sample_batch

from fourm.core.batch import MultimodalBatch
from fourm.errors import FourmError
from fourm.model import FourM


def replace(batch: MultimodalBatch, **changes) -> MultimodalBatch:
    return MultimodalBatch(**{**vars(batch), **changes})


@pytest.fixture
def model() -> FourM:
    return FourM(toy_config()).eval()


def test_logit_shapes_follow_valid_decoder_tokens(model, batch):
    logits = model(batch)
    assert list(logits) == ["rgb", "depth", "caption", "meta"]
    assert {k: tuple(v.shape) for k, v in logits.items()} == {
        "rgb": (2, 32), "depth": (1, 24), "caption": (7, 40), "meta": (1, 16)
    }


def test_perturbing_one_target_modality_leaves_others_unchanged(model, batch):
    base = model(batch)
    # caption decoder inputs changed -> image/vector logits identical, caption logits change
    dec_input = batch.dec_input.clone()
    caption = batch.dec_modality == 2
    dec_input[caption] = (dec_input[caption] + 7) % 40
    out = model(replace(batch, dec_input=dec_input))
    for name in ("rgb", "depth", "meta"):
        assert torch.equal(out[name], base[name])
    assert not torch.allclose(out["caption"], base["caption"])
    # rgb target positions changed -> other modalities identical
    dec_position = batch.dec_position.clone()
    dec_position[0, :2] = torch.tensor([10, 15])
    out = model(replace(batch, dec_position=dec_position))
    for name in ("depth", "caption", "meta"):
        assert torch.equal(out[name], base[name])
    assert not torch.allclose(out["rgb"], base["rgb"])


def test_image_decoder_input_ids_are_ignored(model, batch):
    dec_input = batch.dec_input.clone()
    dec_input[batch.dec_modality != 2] = 5
    out, base = model(replace(batch, dec_input=dec_input)), model(batch)
    assert all(torch.equal(out[k], base[k]) for k in base)


def test_sequence_decoding_is_causal(model):
    tokens = [3, 17, 9, 25, 4]
    def caption_batch(inputs):
        dec = [(2, p, inp, t) for p, (inp, t) in enumerate(zip(inputs, tokens))]
        return pack([{"enc": [(0, 0, 1), (0, 5, 2)], "dec": dec}])
    inputs = [1, 3, 17, 9, 25]
    base = model(caption_batch(inputs))["caption"]
    changed = model(caption_batch(inputs[:3] + [30, 31]))["caption"]  # change positions 3 and 4
    assert torch.allclose(changed[:3], base[:3], atol=1e-6)
    assert not torch.allclose(changed[3:], base[3:])


def test_encoder_padding_and_garbage_do_not_change_outputs(model, batch):
    base = model(batch)
    # widen rows with padding holding garbage ids/modalities/positions
    pad_e, pad_d = 3, 2
    def widen(t, n, fill):
        return torch.cat([t, torch.full((t.shape[0], n), fill, dtype=t.dtype)], dim=1)
    wide = MultimodalBatch(
        enc_tokens=widen(batch.enc_tokens, pad_e, 999), enc_modality=widen(batch.enc_modality, pad_e, 7),
        enc_position=widen(batch.enc_position, pad_e, 123), enc_valid=widen(batch.enc_valid, pad_e, False),
        dec_input=widen(batch.dec_input, pad_d, 555), dec_target=widen(batch.dec_target, pad_d, 777),
        dec_modality=widen(batch.dec_modality, pad_d, 2), dec_position=widen(batch.dec_position, pad_d, 0),
        dec_valid=widen(batch.dec_valid, pad_d, False),
    )
    out = model(wide)
    assert all(torch.allclose(out[k], base[k], atol=1e-5) for k in base)
    # and the padded slots inside the original rows can hold anything too
    enc_tokens = batch.enc_tokens.masked_fill(~batch.enc_valid, 31)
    out = model(replace(batch, enc_tokens=enc_tokens))
    assert all(torch.allclose(out[k], base[k], atol=1e-5) for k in base)
    enc = model.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid)
    assert (enc[~batch.enc_valid] == 0).all()


def test_sample_without_encoder_tokens_is_finite(model, batch):
    out = model(replace(batch, enc_valid=torch.zeros_like(batch.enc_valid)))
    assert all(torch.isfinite(v).all() for v in out.values())


def test_loss_equals_naive_per_modality_cross_entropy(model, batch):
    loss, per_modality = model.loss(batch)
    hidden = model.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid)
    hidden = model.decode(hidden, batch.enc_valid, batch.dec_input, batch.dec_modality, batch.dec_position, batch.dec_valid)
    sums, counts = {}, {}
    for b in range(batch.batch_size):
        for n in range(batch.dec_input.shape[1]):
            if not batch.dec_valid[b, n]:
                continue
            name = model.modality_names[int(batch.dec_modality[b, n])]
            logits = model.head_weight(name) @ hidden[b, n]
            nll = torch.logsumexp(logits, 0) - logits[batch.dec_target[b, n]]
            sums[name] = sums.get(name, 0.0) + nll.item()
            counts[name] = counts.get(name, 0) + 1
    naive = {k: sums[k] / counts[k] for k in sums}
    assert per_modality.keys() == naive.keys()
    for k in naive:
        assert math.isclose(per_modality[k], naive[k], rel_tol=1e-5)
    assert math.isclose(loss.item(), sum(naive.values()) / len(naive), rel_tol=1e-5)


def test_loss_averages_only_present_modalities(model):
    only_rgb = pack([{"enc": [(1, 0, 2)], "dec": [(0, 0, 0, 4), (0, 1, 0, 5)]}])
    loss, per_modality = model.loss(only_rgb)
    assert list(per_modality) == ["rgb"]
    assert math.isclose(loss.item(), per_modality["rgb"], rel_tol=1e-6)


def test_forward_logits_match_loss(model, batch):
    logits = model(batch)
    _, per_modality = model.loss(batch)
    groups = model.token_groups(batch.dec_modality, batch.dec_valid)
    targets = batch.dec_target.reshape(-1)
    for name, index in groups.items():
        assert math.isclose(F.cross_entropy(logits[name], targets[index]).item(), per_modality[name], rel_tol=1e-5)


def test_incremental_decoding_with_cache_equals_full(model):
    tokens = [3, 17, 9, 25]
    inputs = [1, 3, 17, 9]
    batch = pack([{"enc": [(0, 2, 4), (3, 0, 1)], "dec": [(2, p, i, t) for p, (i, t) in enumerate(zip(inputs, tokens))]}])
    context = model.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid)
    full = model.decode(context, batch.enc_valid, batch.dec_input, batch.dec_modality, batch.dec_position, batch.dec_valid)
    cache = model.start_cache(context, batch.enc_valid)
    steps = []
    for p in range(4):
        sl = slice(p, p + 1)
        steps.append(model.decode(None, None, batch.dec_input[:, sl], batch.dec_modality[:, sl],
                                  batch.dec_position[:, sl], batch.dec_valid[:, sl], cache=cache, update_cache=True))
    assert cache.self_kv[0][0].shape[2] == 4
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    # a cache holding only cross-attention keys/values reproduces a plain decode
    again = model.decode(None, None, batch.dec_input, batch.dec_modality, batch.dec_position, batch.dec_valid,
                         cache=model.start_cache(context, batch.enc_valid))
    assert torch.allclose(again, full, atol=1e-5)


def test_bf16_autocast_close_to_fp32(model, batch):
    ref, _ = model.loss(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model.loss(batch)
        logits = model(batch)
    assert loss.dtype == torch.float32
    assert logits["rgb"].dtype == torch.bfloat16
    assert abs(loss.item() - ref.item()) < 0.05


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("enc_modality", (0, 1, 9), "enc_modality\\[0, 1\\] = 9 is not a modality index"),
        ("enc_tokens", (1, 0, 24), "enc_tokens\\[1, 0\\] = 24 is out of range for modality 'depth'"),
        ("dec_target", (0, 3, 40), "dec_target\\[0, 3\\] = 40 is out of range for modality 'caption'"),
        ("dec_input", (0, 4, -1), "dec_input\\[0, 4\\] = -1 is out of range"),
        ("dec_position", (1, 7 - 3, 12), "dec_position\\[1, 4\\] = 12 is out of range for modality 'meta'"),
    ],
)
def test_bad_batches_raise_fourm_error(model, field, value, message):
    batch = two_sample_batch()
    t = getattr(batch, field).clone()
    b, n, v = value
    t[b, n] = v
    with pytest.raises(FourmError, match=message):
        model.loss(replace(batch, **{field: t}))


def test_role_and_shape_errors():
    mods = dict(toy_config().modalities)
    mods["meta"] = mods["meta"].replace(target=False)
    model = FourM(toy_config(modalities=mods))
    batch = two_sample_batch()
    with pytest.raises(FourmError, match="modality 'meta' is in the decoder but is not a target"):
        model.loss(batch)
    with pytest.raises(FourmError, match="must all be \\(B, N\\)"):
        model.encode(batch.enc_tokens[:, :3], batch.enc_modality, batch.enc_position, batch.enc_valid)
    with pytest.raises(FourmError, match="must be a bool tensor"):
        model.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid.long())
    empty = replace(batch, dec_valid=torch.zeros_like(batch.dec_valid))
    with pytest.raises(FourmError, match="no valid decoder tokens"):
        FourM(toy_config()).loss(empty)
    with pytest.raises(FourmError, match="not a target"):
        model.head_weight("meta")


def test_sequence_positions_allow_one_extra_slot_for_span_masking(model):
    # caption length 12: a span-masked decoder side may use positions 0..12, not 13
    ok = pack([{"enc": [(0, 0, 1)], "dec": [(2, 12, 1, 5)]}])
    assert torch.isfinite(model.loss(ok)[0])
    bad = pack([{"enc": [(0, 0, 1)], "dec": [(2, 13, 1, 5)]}])
    with pytest.raises(FourmError, match="dec_position\\[0, 0\\] = 13 is out of range for modality 'caption' \\(expected 0..12"):
        model.loss(bad)
