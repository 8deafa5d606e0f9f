"""Parity with the UNMODIFIED ml-4m code, through fixtures it wrote (tests/fixtures/ml4m/, made by
bench/ml4m_parity/make_fixtures.py; no ml-4m code is needed here).

* FM (4M-7 and 4M-21 modality sets, real vocabularies, fm_*_swiglu_nobias family): encoder outputs,
  decoder outputs and logits of the converted model equal ml-4m's on the same masked inputs (image
  and sequence targets), max abs error <= 1e-4 in fp32; loaded three ways (load_ml4m,
  FourM.from_pretrained on the ml-4m directory, the bundle of ``fourm-convert ml4m``).
* VQ-VAE (ViT semseg with label embedding and post-MLP; MLP encoder with a memcodes quantiser):
  equal token ids, decoder output within 1e-4.
* Text: ml-4m's ids for captions, boxes, metadata and colour palettes, and its span masking.
"""

from __future__ import annotations

import json
import lzma

import pytest
import torch
from ml4m_parity_fixtures import FIXTURES, TOLERANCE, by_key, manifest, max_abs, pack, read_io, unpack

from fourm.cli.convert import main as convert_main
from fourm.convert.ml4m import load_ml4m
from fourm.model import FourM

FM_FIXTURES = ["fm_4m7", "fm_4m21"]
pytestmark = pytest.mark.skipif(not (FIXTURES / "manifest.json").is_file(), reason="ml-4m fixtures not present")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml4m_fixtures")
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = unpack(name, root)
        return cache[name]

    return get


def _compare_fm(model: FourM, name: str) -> dict[str, float]:
    io, meta = read_io(name)
    names, max_key = json.loads(meta["modalities"]), int(meta["max_key"])
    stride = max_key * max_key
    packed = pack(model, io, names, max_key)
    batch = packed.batch
    errors: dict[str, float] = {}
    with torch.no_grad():
        enc = model.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid,
                           batch.enc_patches, decoder_context=False)
        ctx = model.encode(batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches)
        dec = model.decode(ctx, batch.enc_valid, batch.dec_input, batch.dec_modality, batch.dec_position, batch.dec_valid)
        logits = model(batch)
    # encoder: the same tokens (by key), the same outputs
    mine_k, mine = by_key(enc, packed.enc_key, batch.enc_valid, stride)
    ref_k, ref = by_key(io["out.enc_out"], io["out.enc_key"], io["out.enc_valid"], stride)
    assert torch.equal(mine_k, ref_k), "encoder tokens differ from ml-4m's"
    errors["encoder"] = max_abs(mine, ref)
    # decoder
    mine_k, mine = by_key(dec, packed.dec_key, batch.dec_valid, stride)
    ref_k, ref = by_key(io["out.dec_out"], io["out.dec_key"], io["out.dec_valid"], stride)
    assert torch.equal(mine_k, ref_k), "decoder tokens differ from ml-4m's"
    errors["decoder"] = max_abs(mine, ref)
    _, targets = by_key(batch.dec_target, packed.dec_key, batch.dec_valid, stride)
    _, ref_targets = by_key(io["out.dec_target"], io["out.dec_key"], io["out.dec_valid"], stride)
    assert torch.equal(targets, ref_targets), "decoder targets differ from ml-4m's"
    # logits per target modality: fourm's rows are the modality's valid tokens in row-major order
    glob = torch.arange(packed.dec_key.shape[0])[:, None] * stride + packed.dec_key
    ref_mods = {k[len("out.logits."):] for k in io if k.startswith("out.logits.")}
    assert set(logits) <= ref_mods
    for m in ref_mods:
        ref_l, ref_key = io[f"out.logits.{m}"], io[f"out.logits_key.{m}"]
        if ref_l.shape[0] == 0:
            assert m not in logits
            continue
        sel = batch.dec_valid & (batch.dec_modality == model.modality_names.index(m))
        mine_key = glob[sel]  # row-major, as FourM.logits orders them
        o1, o2 = torch.argsort(mine_key), torch.argsort(ref_key)
        assert torch.equal(mine_key[o1], ref_key[o2]), f"logit rows of {m} differ"
        assert logits[m].shape == ref_l.shape
        errors[f"logits {m}"] = max_abs(logits[m][o1], ref_l[o2])
    return errors


def _assert_close(errors: dict[str, float]) -> None:
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    assert not bad, f"max abs error above {TOLERANCE}: {bad}"


@pytest.mark.parametrize("name", FM_FIXTURES)
def test_fm_outputs_match_ml4m(unpacked, name):
    model, info = load_ml4m(unpacked(name))
    assert set(info.dropped) <= {"t5_caption"}
    errors = _compare_fm(model, name)
    roles = manifest()["fixtures"][name]["targets"]
    seq = [m for m in roles if not m.startswith("tok_")]
    img = [m for m in roles if m.startswith("tok_")]
    assert seq and img  # the fixture has sequence and image targets
    assert any(f"logits {m}" in errors for m in seq) and any(f"logits {m}" in errors for m in img)
    _assert_close(errors)


@pytest.mark.parametrize("name", FM_FIXTURES)
def test_fm_config_matches_ml4m(unpacked, name):
    """Released family: SwiGLU width int(2 * 4 * dim / 3), real vocabularies and token grids."""
    src = unpacked(name)
    cfg = json.loads((src / "config.json").read_text())
    model = FourM.from_pretrained(src)  # the ml-4m directory directly
    c = model.config
    assert (c.dim, c.enc_depth, c.dec_depth, c.num_heads) == (cfg["dim"], cfg["encoder_depth"], cfg["decoder_depth"],
                                                               cfg["num_heads"])
    assert c.mlp_hidden == int(2 * int(cfg["dim"] * cfg["mlp_ratio"]) / 3)
    m = c.modalities
    assert m["caption"].vocab_size == 30000 and m["tok_rgb@224"].vocab_size == 16384
    assert m["tok_semseg@224"].vocab_size == 4096 and m["tok_rgb@224"].length == 196
    assert m["rgb@224"].patch_dim == 16 * 16 * 3 and not m["rgb@224"].target
    if name == "fm_4m21":
        assert m["tok_dinov2@224"].length == 256 and m["tok_dinov2_global"].length == 16
        assert m["tok_dinov2_global"].positions == "learned" and "t5_caption" not in m
        # ml-4m slices its (1, 512, D) sin-cos table on the batch axis ([:max_length]), so every sequence
        # modality keeps 512 positions; the converter takes the length from the stored table
        assert {m[k].length for k in ("caption", "metadata", "human_poses", "sam_instance")} == {512}
        assert not c.share_modality_embeddings
    else:
        assert c.share_modality_embeddings


def test_fm_through_cli_bundle_and_from_pretrained(unpacked, tmp_path):
    """fourm-convert ml4m -> bundle; its model, and FourM.from_pretrained on the ml-4m directory, match ml-4m."""
    src = unpacked("fm_4m7")
    out = tmp_path / "bundle"
    assert convert_main(["ml4m", str(src), str(out)]) == 0
    _assert_close(_compare_fm(FourM.from_pretrained(out / "model").eval(), "fm_4m7"))
    _assert_close(_compare_fm(FourM.from_pretrained(src), "fm_4m7"))


# ------------------------------------------------------------------------------ VQ-VAE
@pytest.fixture
def shrunk_vit_b(monkeypatch):
    """The fixture's ViT tokenizer uses ml-4m's vit_b preset shrunk (see the manifest), on both sides."""
    import fourm.convert.ml4m_vqvae as conv

    preset = manifest()["fixtures"]["vqvae_semseg"]["vit_b_preset"]
    monkeypatch.setitem(conv.VIT_PRESETS, "vit_b", (preset["dim_tokens"], preset["depth"], preset["num_heads"]))


@pytest.mark.parametrize("name", ["vqvae_semseg", "vqvae_global"])
def test_vqvae_tokens_and_decoder_match_ml4m(unpacked, shrunk_vit_b, name):
    from fourm.convert.ml4m_vqvae import load_ml4m_vqvae

    tok, info = load_ml4m_vqvae(unpacked(name))
    assert info.kind == "VQVAE" and not info.encoder_only
    io, _ = read_io(name)
    x, want, decoded = io["input"], io["tokens"], io["decoded"]
    with torch.no_grad():
        ids = tok.encode(x)
        assert torch.equal(ids, want.reshape(want.shape[0], -1)), "token ids differ from ml-4m's"
        out = tok.decode_output(ids)
    out = out.reshape(decoded.shape)
    err = max_abs(out, decoded)
    assert err <= TOLERANCE * max(1.0, float(decoded.abs().max())), f"decoder output differs by {err}"
    if name == "vqvae_semseg":
        assert torch.equal(tok.decode(ids), decoded.argmax(1))


def test_vqvae_through_cli(unpacked, shrunk_vit_b, tmp_path):
    from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAE

    out = tmp_path / "tok"
    assert convert_main(["ml4m-tokenizer", str(unpacked("vqvae_global")), str(out)]) == 0
    tok = Ml4mVQVAE.from_pretrained(out)
    io, _ = read_io("vqvae_global")
    with torch.no_grad():
        assert torch.equal(tok.encode(io["input"]), io["tokens"].reshape(io["tokens"].shape[0], -1))


# ------------------------------------------------------------------------------ text
@pytest.fixture(scope="module")
def text():
    cases = json.loads((FIXTURES / "text" / "cases.json").read_text())
    raw = lzma.decompress((FIXTURES / "text" / "tokenizer.json.xz").read_bytes())
    return raw, cases


def _tokenizer(raw, tmp_path):
    from fourm.convert.ml4m_text import Ml4mTextTokenizer

    path = tmp_path / "tokenizer.json"
    path.write_bytes(raw)
    return Ml4mTextTokenizer.load(path)


def test_text_layout_matches_ml4m(text, tmp_path):
    raw, cases = text
    tok = _tokenizer(raw, tmp_path)
    assert tok.vocab_size == cases["tokenizer"]["vocab_size"]
    assert (tok.num_sentinels, tok.coord_bins) == (200, 1000)
    assert tok.pad_id == 0 and tok.eos_id == 3 and tok.sentinel_id(0) == 4


@pytest.mark.parametrize("modality", ["caption", "det", "metadata", "color_palette"])
def test_text_ids_match_ml4m(text, tmp_path, modality):
    raw, cases = text
    tok = _tokenizer(raw, tmp_path)
    rows = [c for c in cases["cases"] if c["modality"] == modality]
    assert rows
    for c in rows:
        expected_text = " ".join(c["text"]) if isinstance(c["text"], list) else c["text"]
        if modality != "caption":
            assert tok.to_text(modality, c["value"]) == expected_text, c["value"]
        assert tok.sequence_ids(modality, c["value"]) == c["ids"], c["value"]


def test_span_masking_matches_ml4m(text, tmp_path):
    raw, cases = text
    tok = _tokenizer(raw, tmp_path)
    for c in cases["span_masking"]:
        assert list(tok.span_mask(c["ids"], c["masked"])) == [c["input"], c["target"]]
        assert tok.merge_spans(c["input"], c["target"]) == c["ids"]
