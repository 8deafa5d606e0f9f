"""ml-4m VQ-VAE tokenizers -> fourm's Ml4mVQVAE: parity with an independent reference, files, CLI, errors."""

from __future__ import annotations

import json

import pytest
import torch
from ml4m_vqvae_reference import (
    CASES,
    TINY_VIT,
    WORKING_SIZE,
    random_input,
    random_state,
    reference_decode,
    reference_encode,
    write_checkpoint,
)

import fourm.convert.ml4m_vqvae as conv
from fourm.cli.convert import main as convert_main
from fourm.convert.ml4m_vqvae import convert_ml4m_vqvae, load_ml4m_vqvae, ml4m_vqvae_to_fourm
from fourm.errors import FourmError
from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAE


@pytest.fixture(autouse=True)
def _tiny_vit(monkeypatch):
    """ml-4m's vit_b preset (768 wide, 12 blocks) shrunk for tests, on both sides."""
    monkeypatch.setitem(conv.VIT_PRESETS, "vit_b", TINY_VIT)


def _checkpoint(tmp_path, name: str, seed: int = 0, **changes):
    cfg = {**CASES[name], **changes}
    state = random_state(cfg, seed)
    return write_checkpoint(tmp_path / name, cfg, state), cfg, state


@pytest.mark.parametrize("name", list(CASES))
def test_ids_and_decoder_match_reference(tmp_path, name):
    src, cfg, state = _checkpoint(tmp_path, name)
    tok, info = load_ml4m_vqvae(src, image_size=WORKING_SIZE.get(name))
    x = random_input(name)
    with torch.no_grad():
        want = reference_encode(cfg, state, x)
        ids = tok.encode(x)
        assert ids.dtype == torch.long and ids.shape == want.shape
        assert torch.equal(ids, want)
        assert ids.shape[1] == tok.num_tokens
        ref = reference_decode(cfg, state, ids)
        out = tok.decode_output(ids)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-4 * max(1.0, ref.abs().max().item()), rtol=1e-4)
    decoded = tok.decode(ids)
    if name == "semseg":
        assert torch.equal(decoded, ref.argmax(1)) and decoded.shape == x.shape
    elif name in ("global", "plain_mlp"):
        assert decoded.shape == (x.shape[0], cfg["n_channels"])
    assert info.kind == "VQVAE" and not info.encoder_only


def test_config_of_converted_tokenizer(tmp_path):
    src, _, _ = _checkpoint(tmp_path, "semseg")
    tok, info = load_ml4m_vqvae(src, image_size=32, domain="tok_semseg@32")
    c = tok.cfg
    assert (c.input, c.num_labels, c.in_channels, c.out_channels, c.quantizer) == ("labels", 7, 6, 7, "cosine")
    assert c.encoder.grid == (8, 8) and c.grid_size == (4, 4) and tok.num_tokens == 16 and tok.vocab_size == 40
    assert c.encoder.post_mlp and c.decoder.post_mlp and c.domain == "tok_semseg@32"
    assert set(info.ignored) == {"quantize._codebook.cluster_size"}  # EMA statistics are not kept
    glob, _ = load_ml4m_vqvae(_checkpoint(tmp_path, "global")[0])
    assert (glob.cfg.input, glob.cfg.quantizer, glob.num_tokens, glob.heads) == ("vector", "memcodes", 4, 4)


def test_encodes_at_other_sizes_like_ml4m(tmp_path):
    """Position tables are resized on the fly: 48 px inputs of a tokenizer trained at 64 px."""
    src, cfg, state = _checkpoint(tmp_path, "semseg")
    tok, _ = load_ml4m_vqvae(src)  # working size: ml-4m's own image_size (64)
    assert tok.num_tokens == 64
    x = torch.randint(0, cfg["n_labels"], (2, 48, 48), generator=torch.Generator().manual_seed(3))
    ids = tok.encode(x)
    assert torch.equal(ids, reference_encode(cfg, state, x)) and ids.shape == (2, 36)
    torch.testing.assert_close(tok.decode_output(ids), reference_decode(cfg, state, ids), atol=1e-3, rtol=1e-4)


def test_save_load_round_trip_and_cli(tmp_path, capsys):
    src, cfg, state = _checkpoint(tmp_path, "pixels")
    out = tmp_path / "converted"
    info = convert_ml4m_vqvae(src, out, image_size=32)
    assert info.config.input == "pixels" and info.config.undo_std
    loaded = Ml4mVQVAE.from_pretrained(out)
    direct, _ = load_ml4m_vqvae(src, image_size=32)
    x = random_input("pixels")
    ids = loaded.encode(x)
    assert torch.equal(ids, direct.encode(x)) and torch.equal(ids, reference_encode(cfg, state, x))
    assert torch.equal(loaded.decode(ids), direct.decode(ids))
    # the CLI writes the same directory
    cli_out = tmp_path / "cli"
    assert convert_main(["ml4m-tokenizer", str(src), str(cli_out), "--image-size", "32"]) == 0
    text = capsys.readouterr().out
    assert "VQVAE (pixels)" in text and "V=24" in text and "N=16 at 32px" in text
    assert torch.equal(Ml4mVQVAE.from_pretrained(cli_out).encode(x), ids)
    assert json.loads((cli_out / "config.json").read_text())["format"] == "ml4m-vqvae"


def test_divae_converts_encoder_only(tmp_path, capsys):
    """A DiVAE shares the VQ-VAE encoder and quantizer; its diffusion decoder is left out."""
    cfg = {**CASES["pixels"], "dec_type": "unet_patched", "beta_schedule": "squaredcos_cap_v2",
           "prediction_type": "v_prediction", "num_train_timesteps": 1000}
    base = random_state(CASES["pixels"], seed=4)
    state = {k: v for k, v in base.items() if not k.startswith(("decoder.", "post_quant_proj."))}
    state["decoder.unet.conv_in.weight"] = torch.zeros(4, 3, 3, 3)
    src = write_checkpoint(tmp_path / "divae", cfg, state)
    with pytest.raises(FourmError, match="DiVAE") as e:
        load_ml4m_vqvae(src)
    assert "\n" not in str(e.value)
    tok, info = load_ml4m_vqvae(src, encoder_only=True)
    assert info.kind == "DiVAE" and info.encoder_only and tok.decoder is None
    x = random_input("pixels")
    assert torch.equal(tok.encode(x), reference_encode(cfg, state, x))
    with pytest.raises(FourmError, match="encoder only"):
        tok.decode(tok.encode(x))
    assert convert_main(["ml4m-tokenizer", str(src), str(tmp_path / "o1")]) == 2
    assert "--encoder-only" in capsys.readouterr().err
    assert convert_main(["ml4m-tokenizer", str(src), str(tmp_path / "o2"), "--encoder-only"]) == 0
    assert "left out decoder" in capsys.readouterr().out
    Ml4mVQVAE.from_pretrained(tmp_path / "o2")


def _drop(key):
    return lambda c, s: s.pop(key)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c, s: c.update(use_magic=True), "unknown ml-4m tokenizer config key(s) use_magic"),
        (lambda c, s: c.update(quant_type="fsq"), "quant_type='fsq' is not supported"),
        (lambda c, s: c.update(num_codebooks=2), "num_codebooks=2 with quant_type 'lucid'"),
        (lambda c, s: c.update(enc_type="convnext_enc"), "enc_type='convnext_enc' is not supported"),
        (lambda c, s: c.update(dec_type="vit_b_enc"), "dec_type='vit_b_enc' is an encoder preset"),
        (lambda c, s: c.update(post_mlp="yes"), "post_mlp must be true or false"),
        (lambda c, s: c.update(latent_dim=0), "latent_dim must be a positive integer"),
        (_drop("decoder.blocks.1.mlp.fc2.bias"), "missing weight 'decoder.blocks.1.mlp.fc2.bias'"),
        (lambda c, s: s.update({"encoder.blocks.0.attn.qkv.weight": torch.zeros(5, 32)}),
         "'encoder.blocks.0.attn.qkv.weight' has shape (5, 32), expected (96, 32)"),
        (lambda c, s: s.update({"encoder.pos_emb": torch.zeros(1, 32, 5, 5)}), "'encoder.pos_emb' has shape (1, 32, 5, 5)"),
        (lambda c, s: s.update({"encoder.extra.weight": torch.zeros(2)}), "unexpected weight(s) encoder.extra.weight"),
        (lambda c, s: s.update({"quantize._codebook.initted": torch.zeros(1)}), "codebook was never initialised"),
        (lambda c, s: s.update({"encoder.proj.weight": torch.zeros(32, 6, 1, 1)}), "has a (1, 1) kernel, expected (8, 8)"),
    ],
)
def test_errors_are_one_line(tmp_path, change, message):
    cfg = dict(CASES["semseg"])
    state = random_state(cfg)
    change(cfg, state)
    src = write_checkpoint(tmp_path / "bad", cfg, state)
    with pytest.raises(FourmError) as e:
        load_ml4m_vqvae(src)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert convert_main(["ml4m-tokenizer", str(src), str(tmp_path / "out")]) == 2


def test_memcodes_shape_errors():
    cfg = dict(CASES["global"])
    state = random_state(cfg)
    state["quantize.codes"] = torch.zeros(4, 20, 3)
    with pytest.raises(FourmError, match=r"'quantize.codes' has shape \(4, 20, 3\), expected \(4, 20, 4\)"):
        ml4m_vqvae_to_fourm(cfg, state)
    with pytest.raises(FourmError, match="not divisible by num_codebooks"):
        ml4m_vqvae_to_fourm({**cfg, "num_codebooks": 3}, random_state(cfg))


def test_bad_inputs_and_files(tmp_path):
    src, cfg, _ = _checkpoint(tmp_path, "semseg")
    tok, _ = load_ml4m_vqvae(src, image_size=32)
    with pytest.raises(FourmError, match="long class ids"):
        tok.encode(torch.zeros(1, 6, 32, 32))
    with pytest.raises(FourmError, match=r"class ids must be in \[0, 6\]"):
        tok.encode(torch.full((1, 32, 32), 9))
    with pytest.raises(FourmError, match="not divisible by the patch size"):
        tok.encode(torch.zeros(1, 30, 30, dtype=torch.long))
    with pytest.raises(FourmError, match=r"token ids must be in \[0, 39\]"):
        tok.decode(torch.full((1, 16), 40))
    with pytest.raises(FourmError, match="do not form a square grid"):
        tok.decode(torch.zeros(1, 15, dtype=torch.long))
    glob, _ = load_ml4m_vqvae(_checkpoint(tmp_path, "global")[0])
    with pytest.raises(FourmError, match=r"expected token ids of shape \(B, 4\)"):
        glob.decode(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(FourmError, match=r"C=12"):
        glob.encode(torch.zeros(2, 11))
    # files
    out = tmp_path / "saved"
    tok.save_pretrained(out)
    data = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**data, "codebook_size": 41}))
    with pytest.raises(FourmError, match="do not match its config") as e:
        Ml4mVQVAE.from_pretrained(out)
    assert "\n" not in str(e.value)
    (out / "config.json").write_text(json.dumps({**data, "format": "other"}))
    with pytest.raises(FourmError, match="not a converted ml-4m VQ-VAE"):
        Ml4mVQVAE.from_pretrained(out)
    (out / "config.json").write_text(json.dumps({**data, "mystery": 1}))
    with pytest.raises(FourmError, match="unknown config field 'mystery'"):
        Ml4mVQVAE.from_pretrained(out)
    (out / "model.safetensors").write_bytes(b"garbage")
    (out / "config.json").write_text(json.dumps(data))
    with pytest.raises(FourmError, match="corrupt tokenizer weights"):
        Ml4mVQVAE.from_pretrained(out)
    with pytest.raises(FourmError, match="not found"):
        load_ml4m_vqvae(tmp_path / "nope" / "deeper")
    fm_dir = tmp_path / "fm"
    fm_dir.mkdir()
    (fm_dir / "config.json").write_text(json.dumps({"domains_in": ["caption"]}))
    with pytest.raises(FourmError, match="FM model, not a tokenizer"):
        load_ml4m_vqvae(fm_dir)
