"""ml-4m FM checkpoints -> fourm: parity with an independent forward pass, round trips, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ml4m_reference import (
    GLOBAL_TOKENS,
    IMAGE_SIZE,
    PATCH,
    SEQ_LEN,
    VOCAB,
    hidden_dim,
    ml4m_config,
    random_state,
    reference_forward,
    write_checkpoint,
)

from fourm.cli.convert import main as convert_main
from fourm.convert.ml4m import convert_ml4m, is_ml4m_dir, load_ml4m, ml4m_to_fourm
from fourm.core.batch import MultimodalBatch
from fourm.core.patches import patchify
from fourm.errors import FourmError
from fourm.model import FourM

B = 2


def _data(seed: int = 0):
    """ml-4m style per-modality inputs/targets (masks True = not used) for B = 2 samples."""
    g = torch.Generator().manual_seed(seed)
    n_img = (IMAGE_SIZE // PATCH) ** 2
    pixels = torch.randint(0, 256, (B, IMAGE_SIZE, IMAGE_SIZE, 3), generator=g, dtype=torch.uint8)
    tok_rgb = torch.randint(0, VOCAB["tok_rgb@32"], (B, n_img), generator=g)
    glob = torch.randint(0, VOCAB["tok_dinov2_global"], (B, GLOBAL_TOKENS), generator=g)
    cap_in = torch.randint(0, VOCAB["caption"], (B, SEQ_LEN["caption"]), generator=g)
    cap_out = torch.randint(0, VOCAB["caption"], (B, SEQ_LEN["caption"]), generator=g)
    det_out = torch.randint(0, VOCAB["det"], (B, SEQ_LEN["det"]), generator=g)

    def prefix(lengths, total):
        return torch.arange(total)[None] >= torch.tensor(lengths)[:, None]  # True beyond the prefix

    perm = torch.stack([torch.randperm(n_img, generator=g) for _ in range(B)])
    rgb_tok_in = torch.ones(B, n_img, dtype=torch.bool)
    rgb_tok_out = torch.ones(B, n_img, dtype=torch.bool)
    for b, (k_in, k_out) in enumerate(((3, 5), (6, 2))):
        rgb_tok_in[b, perm[b, :k_in]] = False
        rgb_tok_out[b, perm[b, k_in : k_in + k_out]] = False
    pix_in = torch.ones(B, n_img, dtype=torch.bool)
    pix_in[0, perm[0, 8:12]] = False
    pix_in[1, perm[1, 10:11]] = False
    glob_in = torch.tensor([[False, True, True, False], [True, True, True, True]])
    glob_out = torch.tensor([[True, False, False, True], [False, True, False, False]])
    enc = {
        "rgb@32": {"tensor": pixels.permute(0, 3, 1, 2).float() / 255.0, "input_mask": pix_in},
        "tok_rgb@32": {"tensor": tok_rgb, "input_mask": rgb_tok_in},
        "tok_dinov2_global": {"tensor": glob, "input_mask": glob_in},
        "caption": {"tensor": cap_in, "input_mask": prefix([5, 3], SEQ_LEN["caption"])},
    }
    dec = {
        "tok_rgb@32": {"tensor": tok_rgb, "target_mask": rgb_tok_out},
        "tok_dinov2_global": {"tensor": glob, "target_mask": glob_out},
        "caption": {"tensor": cap_out, "target_mask": prefix([4, 6], SEQ_LEN["caption"])},
        "det": {"tensor": det_out, "target_mask": prefix([3, 2], SEQ_LEN["det"])},
    }
    return pixels, enc, dec


def _fourm_batch(model: FourM, pixels, enc, dec) -> MultimodalBatch:
    """The same tokens as one packed fourm batch (sequences: decoder input = target token p,
    target = token p + 1, position p; no [SOS])."""
    names = model.modality_names
    p_dim = model.config.patch_width
    rows = []
    for b in range(B):
        et, em, ep, epatch, dt, di, dm, dp = [], [], [], [], [], [], [], []
        patches = torch.from_numpy(patchify(pixels[b].numpy(), PATCH))
        for m, d in enc.items():
            idx = (~d["input_mask"][b]).nonzero()[:, 0]
            for j, i in enumerate(idx.tolist()):
                em.append(names.index(m))
                ep.append(j if m in SEQ_LEN else i)
                if m.startswith("rgb"):
                    et.append(0)
                    epatch.append(patches[i])
                else:
                    et.append(int(d["tensor"][b, i]))
                    epatch.append(torch.zeros(p_dim, dtype=torch.uint8))
        for m, d in dec.items():
            ids = d["tensor"][b]
            idx = (~d["target_mask"][b]).nonzero()[:, 0].tolist()
            if m in SEQ_LEN:
                for p in range(len(idx) - 1):
                    di.append(int(ids[idx[p]]))
                    dt.append(int(ids[idx[p + 1]]))
                    dm.append(names.index(m))
                    dp.append(p)
            else:
                for i in idx:
                    di.append(0)
                    dt.append(int(ids[i]))
                    dm.append(names.index(m))
                    dp.append(i)
        rows.append((et, em, ep, torch.stack(epatch), dt, di, dm, dp))
    ne = max(len(r[0]) for r in rows) + 2
    nd = max(len(r[4]) for r in rows) + 2

    def pad(values, n):
        return torch.tensor(values + [0] * (n - len(values)), dtype=torch.long)

    return MultimodalBatch(
        enc_tokens=torch.stack([pad(r[0], ne) for r in rows]),
        enc_modality=torch.stack([pad(r[1], ne) for r in rows]),
        enc_position=torch.stack([pad(r[2], ne) for r in rows]),
        enc_valid=torch.stack([torch.arange(ne) < len(r[0]) for r in rows]),
        dec_input=torch.stack([pad(r[5], nd) for r in rows]),
        dec_target=torch.stack([pad(r[4], nd) for r in rows]),
        dec_modality=torch.stack([pad(r[6], nd) for r in rows]),
        dec_position=torch.stack([pad(r[7], nd) for r in rows]),
        dec_valid=torch.stack([torch.arange(nd) < len(r[4]) for r in rows]),
        enc_patches=torch.stack([torch.cat([r[3], torch.zeros(ne - len(r[3]), p_dim, dtype=torch.uint8)]) for r in rows]),
    )


def _checkpoint(tmp_path, name="ml4m", **cfg_kwargs):
    cfg = ml4m_config(**cfg_kwargs)
    state = random_state(cfg, seed=1)
    return write_checkpoint(tmp_path / name, cfg, state), cfg, state


@pytest.mark.parametrize(
    "variant",
    [
        {"share_modality_embeddings": False},  # 4M-21 style
        {"share_modality_embeddings": None},  # 4M-7 style: key absent (shared), stored once
        {"share_modality_embeddings": True, "qk_norm": True},
    ],
)
def test_forward_matches_reference(tmp_path, variant):
    """Encoder output, decoder context and decoder logits of the converted model equal the
    independent ml-4m forward (masked inputs, padding, all modality kinds) to ~1e-5."""
    src, cfg, state = _checkpoint(tmp_path, **variant)
    model, info = load_ml4m(src)
    assert info.dropped == {"t5_caption": info.dropped["t5_caption"]}
    assert model.config.mlp_hidden == hidden_dim(cfg) == 170
    assert model.config.share_modality_embeddings == (variant["share_modality_embeddings"] is not False)
    pixels, enc, dec = _data()
    batch = _fourm_batch(model, pixels, enc, dec)
    ne, nd = batch.enc_tokens.shape[1], batch.dec_input.shape[1]
    ref_enc, ref_mask, ref_keys, ref_logits = reference_forward(cfg, state, enc, dec, ne, nd)

    with torch.no_grad():
        out = model.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid,
                           batch.enc_patches, decoder_context=False)
        logits = model(batch)
    # encoder outputs: same tokens in another order -> compare sorted by (modality, index)
    all_names = sorted(set(cfg["domains_in"]) | set(cfg["domains_out"]))
    ids = torch.tensor([all_names.index(n) for n in model.modality_names])
    keys = ids[batch.enc_modality] * 1000 + batch.enc_position
    for b in range(B):
        mine = out[b][batch.enc_valid[b]][torch.argsort(keys[b][batch.enc_valid[b]])]
        theirs = ref_enc[b][~ref_mask[b]][torch.argsort(ref_keys[b][~ref_mask[b]])]
        assert mine.shape == theirs.shape
        torch.testing.assert_close(mine, theirs, atol=2e-5, rtol=1e-4)
    assert set(logits) == set(ref_logits)
    for m in ref_logits:
        assert logits[m].shape == ref_logits[m].shape and logits[m].shape[0] > 0
        torch.testing.assert_close(logits[m], ref_logits[m], atol=2e-5, rtol=1e-4)


def test_cached_decoding_matches_full_decode(tmp_path):
    """The context norm reaches the precomputed cross-attention keys/values (start_cache)."""
    src, _, _ = _checkpoint(tmp_path)
    model = FourM.from_pretrained(src)
    pixels, enc, dec = _data(seed=3)
    batch = _fourm_batch(model, pixels, enc, dec)
    with torch.no_grad():
        ctx = model.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches)
        rows = (batch.dec_input, batch.dec_modality, batch.dec_position, batch.dec_valid)
        full = model.decode(ctx, batch.enc_valid, *rows)
        cached = model.decode(None, None, *rows, cache=model.start_cache(ctx, batch.enc_valid))
    valid = batch.dec_valid
    torch.testing.assert_close(cached[valid], full[valid], atol=1e-5, rtol=1e-5)


def test_modality_map_and_config(tmp_path):
    src, cfg, state = _checkpoint(tmp_path)
    model, info = load_ml4m(src)
    c = model.config
    assert model.modality_names == ["caption", "det", "rgb@32", "tok_dinov2_global", "tok_rgb@32"]
    assert (c.dim, c.enc_depth, c.dec_depth, c.num_heads) == (64, 2, 2, 4)
    assert c.context_projection and c.context_norm and not c.tie_embeddings
    m = c.modalities
    assert (m["caption"].kind, m["caption"].vocab_size, m["caption"].length, m["caption"].input, m["caption"].target) == (
        "sequence", 40, 12, True, True)
    assert (m["det"].input, m["det"].target, m["det"].length) == (False, True, 10)
    assert (m["rgb@32"].patch_dim, m["rgb@32"].length, m["rgb@32"].target) == (3 * PATCH * PATCH, 16, False)
    assert m["tok_dinov2_global"].positions == "learned" and m["tok_dinov2_global"].length == GLOBAL_TOKENS
    assert m["tok_rgb@32"].positions == "sincos" and m["tok_rgb@32"].vocab_size == 50
    assert info.modalities["rgb@32"].pixel_mean == pytest.approx([0.485, 0.456, 0.406])
    # learned tables land in fourm's per-side position tables
    offset = 0  # tok_dinov2_global is the only learned modality
    torch.testing.assert_close(model.embeddings.enc_positions[offset : offset + 4],
                               state["encoder_embeddings.tok_dinov2_global.pos_emb"][0])
    torch.testing.assert_close(model.embeddings.dec_positions[offset : offset + 4],
                               state["decoder_embeddings.tok_dinov2_global.pos_emb"][0])


def test_convert_round_trip_and_from_pretrained(tmp_path):
    """convert -> bundle (model/ + modality map); reloading gives the same weights and logits
    as loading the ml-4m directory directly with FourM.from_pretrained."""
    src, _, _ = _checkpoint(tmp_path)
    assert is_ml4m_dir(src)
    out = tmp_path / "converted"
    info = convert_ml4m(src, out)
    assert not is_ml4m_dir(out) and not is_ml4m_dir(out / "model")
    direct, converted = FourM.from_pretrained(src), FourM.from_pretrained(out / "model")
    a, b = direct.state_dict(), converted.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    mapping = json.loads((out / "ml4m_modalities.json").read_text())
    assert set(mapping["modalities"]) == set(info.modalities) and "t5_caption" in mapping["dropped"]
    assert mapping["modalities"]["caption"] == {**mapping["modalities"]["caption"], "kind": "sequence",
                                                "vocab_size": 40, "length": 12, "input": True, "target": True}
    pixels, enc, dec = _data(seed=5)
    batch = _fourm_batch(converted, pixels, enc, dec)
    converted.eval()
    with torch.no_grad():
        la, lb = direct(batch), converted(batch)
    assert all(torch.equal(la[k], lb[k]) for k in la)


def test_cli_convert(tmp_path, capsys):
    src, _, _ = _checkpoint(tmp_path)
    out = tmp_path / "cli_out"
    assert convert_main(["ml4m", str(src), str(out)]) == 0
    text = capsys.readouterr().out
    assert "dropped t5_caption" in text and "tok_dinov2_global" in text and "learned positions" in text
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "config.json").is_file()
    assert (out / "modalities.json").is_file() and (out / "generation.json").is_file()
    # a re-run into its own output is allowed; an OUT inside SRC is refused
    assert convert_main(["ml4m", str(src), str(out)]) == 0
    assert convert_main(["ml4m", str(src), str(src / "inside")]) == 2
    assert "inside" in capsys.readouterr().err


def test_python_dash_m_entry():
    import fourm.convert.__main__ as entry

    assert entry.main is convert_main


def test_shared_modality_embedding_stored_under_either_name(tmp_path):
    cfg = ml4m_config(share_modality_embeddings=None)
    state = random_state(cfg, seed=2)
    # keep only the decoder's copy of one shared embedding (the other name may be the one saved)
    state = dict(state)
    state["decoder_embeddings.caption.mod_emb"] = state.pop("encoder_embeddings.caption.mod_emb")
    model, _ = load_ml4m(write_checkpoint(tmp_path / "x", cfg, state))
    row = model.modality_names.index("caption")
    torch.testing.assert_close(model.embeddings.enc_modality[row], state["decoder_embeddings.caption.mod_emb"].reshape(-1))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c, s: c.update(use_rope=True), "unknown ml-4m config key(s) use_rope"),
        (lambda c, s: c.update(qkv_bias=True), "qkv_bias=True is not supported"),
        (lambda c, s: c.update(num_register_tokens=4), "num_register_tokens=4"),
        (lambda c, s: c.pop("dim"), "missing ml-4m config key(s) dim"),
        (lambda c, s: c["domains_in"].append("mystery"), "unknown ml-4m modality 'mystery'"),
        (lambda c, s: s.update({"encoder.0.extra.weight": torch.zeros(3)}), "unexpected weight(s) encoder.0.extra.weight"),
        (lambda c, s: s.pop("decoder.1.mlp.fc3.weight"), "missing weight 'decoder.1.mlp.fc3.weight'"),
        (lambda c, s: s.update({"encoder.0.attn.qkv.weight": torch.zeros(5, 64)}), "'encoder.0.attn.qkv.weight' has shape (5, 64)"),
        (lambda c, s: s.update({"encoder.0.norm1.bias": torch.ones(64)}), "norm biases are not supported"),
    ],
)
def test_errors_are_one_line(tmp_path, change, message):
    cfg = ml4m_config()
    state = random_state(cfg, seed=0)
    change(cfg, state)
    src = write_checkpoint(tmp_path / "bad", cfg, state)
    with pytest.raises(FourmError) as e:
        load_ml4m(src)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert convert_main(["ml4m", str(src), str(tmp_path / "out")]) == 2


def test_keep_unsupported_modality_fails():
    cfg = ml4m_config()
    with pytest.raises(FourmError, match="t5_caption"):
        ml4m_to_fourm(cfg, random_state(cfg), keep=["t5_caption"])


def test_missing_source_and_hub_id_offline(tmp_path, monkeypatch):
    import sys

    with pytest.raises(FourmError, match="not found"):
        load_ml4m(tmp_path / "nope" / "deeper")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # no download in tests
    with pytest.raises(FourmError, match="huggingface_hub"):
        load_ml4m("EPFL-VILAB/4M-7_B_CC12M")


def test_patch_projection_folds_imagenet_normalisation():
    """fourm's patch values u = level * 2 / 255 - 1 through the folded projection give the ml-4m
    projection of ImageNet-normalised pixels."""
    cfg = ml4m_config()
    state = random_state(cfg)
    _, fstate, _ = ml4m_to_fourm(cfg, state)
    levels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 3 * PATCH * PATCH))).float()
    u = levels * (2 / 255) - 1
    mine = u @ fstate["embeddings.patch_embed.rgb@32.weight"].T + fstate["embeddings.patch_embed.rgb@32.bias"]
    normed = (levels.view(5, PATCH * PATCH, 3) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    theirs = normed.reshape(5, -1) @ state["encoder_embeddings.rgb@32.proj.weight"].T
    torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-5)
