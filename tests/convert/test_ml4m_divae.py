"""ml-4m DiVAE tokenizers -> fourm's Ml4mDiVAE: ids and decoded images against ml-4m's own outputs.

The fixtures (``tests/fixtures/ml4m/divae``) were written by ``bench/ml4m_parity/make_divae_fixtures.py``
with apple/ml-4m's code (commit in ``cases.json``): a small random DiVAE in ml-4m's hub layout
(``model/``), two images, ml-4m's token ids for them, and ml-4m's ``decode_tokens`` output for four
scheduler settings (DDPM and DDIM; cosine / linear / sigmoid / shifted-cosine schedules; v, x0 and
epsilon prediction; thresholding and clipping), each with its generator seed, steps and size. ml-4m's
presets were shrunk there (``presets`` in ``cases.json``); the converter's tables are patched to match.
No ml-4m code runs here.

Tolerance of the decoded images: both sides run the same fp32 computation on the same fp16-exact
weights and the same noise; they differ only in operation order (fourm's attention is one fused
``scaled_dot_product_attention`` where ml-4m scales q and k by d^-1/4 and runs two einsums; other
kernels may block sums differently), i.e. float32 rounding of order 1e-7 per UNet pass, carried over
3-5 steps. The largest difference observed is 8.3e-7 (outputs of order 1); 1e-5 leaves a 10x margin
and is still far below what any real mismatch gives (a wrong timestep, schedule value, noise draw or
weight moves the outputs by 1e-3 or more).

The noise schedule (``alphas_cumprod``) is diffusers' fp32 cumulative product on both sides, and CPUs
round that product differently: on an AMD EPYC it differs from the fixtures' by up to 8.7e-7 (relative)
for the cosine schedule, which DDPM's ``1 / sqrt(alpha_bar)`` near t = 999 carries to 3.6e-5 in the
images. So the schedule is checked against ml-4m's within ``CUMPROD_RTOL`` (a wrong schedule is off by
1e-3 or more), and the images are decoded with ml-4m's own schedule values, at ``ATOL``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from ml4m_reference import ml4m_config
from ml4m_reference import random_state as fm_state
from ml4m_reference import write_checkpoint as write_fm
from safetensors.torch import load_file, save_file

import fourm.convert.ml4m_divae as conv
import fourm.convert.ml4m_vqvae as vq_conv
import tokenizers_zoo.image.ml4m_divae as divae
from fourm.cli.convert import main as convert_main
from fourm.convert.ml4m import _Weights
from fourm.convert.ml4m_divae import convert_ml4m_divae, load_ml4m_divae, ml4m_divae_to_fourm
from fourm.errors import FourmError
from tokenizers_zoo.image.ml4m_divae import DECODER_DIR, Ml4mDiVAE, Ml4mUNet, make_scheduler, ml4m_timesteps
from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ml4m" / "divae"
RECORD = json.loads((FIXTURES / "cases.json").read_text())
CASES = RECORD["cases"]
ATOL = 1e-5  # see the module docstring
CUMPROD_RTOL = 1e-5  # see the module docstring


def use_reference_schedule(monkeypatch, reference: dict, case: str) -> None:
    """Decode with ml-4m's fp32 ``alphas_cumprod`` of ``case``, after checking that ours matches it
    within CUMPROD_RTOL (CPUs round the cumulative product differently)."""
    made = divae.make_scheduler

    def make(cfg, kind=None):
        sched = made(cfg, kind)
        want = reference[f"{case}.alphas_cumprod"]
        torch.testing.assert_close(sched.alphas_cumprod, want, atol=0, rtol=CUMPROD_RTOL)
        sched.alphas_cumprod = want.clone()
        return sched

    monkeypatch.setattr(divae, "make_scheduler", make)


@pytest.fixture(autouse=True)
def _tiny_presets(monkeypatch):
    """ml-4m's vit_b encoder and unet_patched decoder at the sizes the fixtures were made with."""
    vit = RECORD["presets"]["vit_b_enc"]
    monkeypatch.setitem(vq_conv.VIT_PRESETS, "vit_b", (vit["dim_tokens"], vit["depth"], vit["num_heads"]))
    monkeypatch.setitem(conv.UNET_PRESETS, "unet_patched", {**RECORD["presets"]["unet_patched"], "num_heads": 1})


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "reference.safetensors"))


def _source(tmp_path: Path, config_changes: dict | None = None, state_change=None, name: str = "divae") -> Path:
    """A copy of the fixture DiVAE with its config.json / state dict changed."""
    src = tmp_path / name
    shutil.copytree(FIXTURES / "model", src)
    if config_changes:
        cfg = json.loads((src / "config.json").read_text())
        cfg.update(config_changes)
        (src / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if v is not None}))
    if state_change is not None:
        state = load_file(str(src / "model.safetensors"))
        state_change(state)
        save_file(state, str(src / "model.safetensors"))
    return src


# ------------------------------------------------------------------------------ parity with ml-4m
def test_ids_equal_ml4m(reference):
    tok, info = load_ml4m_divae(FIXTURES / "model")
    ids = tok.encode(reference["images"])
    assert ids.dtype == torch.long and ids.shape == reference["ids"].shape == (2, tok.num_tokens)
    assert torch.equal(ids, reference["ids"])
    assert len(set(ids.flatten().tolist())) > 8  # the fixture's ids are not degenerate
    assert info.kind == "DiVAE" and not info.encoder_only and info.dec_type == "unet_patched"
    assert (tok.decoder_cfg.scheduler, tok.decoder_cfg.prediction_type, tok.decoder_cfg.sample_size) == ("ddpm", "v_prediction", 32)


@pytest.mark.parametrize("case", list(CASES))
def test_decode_matches_ml4m(tmp_path, monkeypatch, reference, case):
    spec = CASES[case]
    tok, _ = load_ml4m_divae(_source(tmp_path, spec["config"]))
    sched = make_scheduler(tok.decoder_cfg)
    torch.testing.assert_close(sched.alphas_cumprod, reference[f"{case}.alphas_cumprod"], atol=0, rtol=CUMPROD_RTOL)
    use_reference_schedule(monkeypatch, reference, case)
    steps = ml4m_timesteps(tok.decoder_cfg.scheduler, 1000, spec["steps"], spec["mode"])
    assert steps.tolist() == reference[f"{case}.timesteps"].tolist()
    out = tok.decode(reference["ids"], steps=spec["steps"], seed=spec["seed"], image_size=spec["image_size"],
                     timestep_spacing=spec["mode"])
    want = reference[f"{case}.output"]
    assert out.shape == want.shape and out.dtype == torch.float32
    err = (out - want).abs().max().item()
    assert err <= ATOL, f"{case}: max abs error {err:.2e}"
    # the same generator object gives the same result; another seed another image
    again = tok.decode(reference["ids"], steps=spec["steps"], generator=torch.Generator().manual_seed(spec["seed"]),
                       image_size=spec["image_size"], timestep_spacing=spec["mode"])
    assert torch.equal(again, out)
    other = tok.decode(reference["ids"], steps=spec["steps"], seed=spec["seed"] + 10, image_size=spec["image_size"],
                       timestep_spacing=spec["mode"])
    assert (other - want).abs().max() > 1e-3


def test_scheduler_override_and_defaults(reference):
    tok, _ = load_ml4m_divae(FIXTURES / "model")
    ids = reference["ids"][:1]
    out = tok.decode(ids, steps=2)  # default size: 4x4 tokens x patch 8; seed 0
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
    assert torch.equal(out, tok.decode(ids, steps=2, seed=0))
    ddim = tok.decode(ids, steps=2, scheduler="ddim")
    assert not torch.equal(ddim, out)
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tok.decode(ids, steps=2, scheduler="ddim", noise=noise, seed=None), ddim)
    assert ml4m_timesteps("ddim", 1000, 4, "leading").tolist() == [750, 500, 250, 0]


def test_released_unet_layout(monkeypatch):
    """The key map at the released size (ml-4m's real unet_patched: widths 256-512, attention at two
    levels, 3 blocks per level), from the key / shape list ml-4m's own model has (meta tensors)."""
    monkeypatch.setitem(conv.UNET_PRESETS, "unet_patched", conv.RELEASED_UNET_PRESETS["unet_patched"])
    layout = json.loads((FIXTURES / "released_decoder_layout.json").read_text())
    tensors = {k: torch.empty(shape, device="meta") for k, shape in layout.items()}
    dec_cfg, _ = conv.diffusion_config({"n_channels": 3, "latent_dim": 32, "image_size": 224, "dec_type": "unet_patched"})
    w = _Weights(tensors, "released")
    state = conv._unet_state(w, dec_cfg.unet)
    w.check_all_used()
    with torch.device("meta"):
        unet = Ml4mUNet(dec_cfg.unet)
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert sum(math.prod(s) for s in layout.values()) == sum(p.numel() for p in unet.parameters())


# ------------------------------------------------------------------------------ files and CLI
def test_converted_directory_round_trip(tmp_path, monkeypatch, reference):
    info = convert_ml4m_divae(FIXTURES / "model", tmp_path / "tok", domain="tok_rgb@32")
    assert info.kind == "DiVAE" and (tmp_path / "tok" / DECODER_DIR / "model.safetensors").is_file()
    tok = Ml4mDiVAE.from_pretrained(tmp_path / "tok")
    assert tok.cfg.domain == "tok_rgb@32" and torch.equal(tok.encode(reference["images"]), reference["ids"])
    spec = CASES["ddpm_default"]
    use_reference_schedule(monkeypatch, reference, "ddpm_default")
    out = tok.decode(reference["ids"], steps=spec["steps"], seed=spec["seed"])
    assert (out - reference["ddpm_default.output"]).abs().max() <= ATOL
    # the same directory reads as an encoder-only Ml4mVQVAE (what bundles load image tokenizers with)
    enc = Ml4mVQVAE.from_pretrained(tmp_path / "tok")
    assert enc.cfg.decoder is None and torch.equal(enc.encode(reference["images"]), reference["ids"])


def test_cli_ml4m_tokenizer(tmp_path, capsys, reference):
    out = tmp_path / "out"
    assert convert_main(["ml4m-tokenizer", str(FIXTURES / "model"), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "DiVAE (pixels)  V=64  N=16 at 32px" in printed and "decoder: diffusion (unet_patched" in printed
    assert torch.equal(Ml4mDiVAE.from_pretrained(out).encode(reference["images"]), reference["ids"])
    enc = tmp_path / "enc"
    assert convert_main(["ml4m-tokenizer", str(FIXTURES / "model"), str(enc), "--encoder-only"]) == 0
    assert "encoder only" in capsys.readouterr().out and not (enc / DECODER_DIR).exists()
    assert torch.equal(Ml4mVQVAE.from_pretrained(enc).encode(reference["images"]), reference["ids"])


def test_cli_ml4m_bundle_with_divae(tmp_path, capsys):
    """``fourm-convert ml4m --tokenizer tok_rgb@32=<DiVAE>``: the bundle's tokenizer has its decoder."""
    cfg = ml4m_config()
    fm = write_fm(tmp_path / "fm", cfg, fm_state(cfg, seed=1))

    def vocab_50(state):  # the FM fixture's tok_rgb@32 has a vocabulary of 50
        for key in ("quantize._codebook.embed", "quantize._codebook.cluster_size"):
            state[key] = state[key][:50].contiguous()

    src = _source(tmp_path, {"codebook_size": 50}, vocab_50)
    out = tmp_path / "bundle"
    assert convert_main(["ml4m", str(fm), str(out), "--tokenizer", f"tok_rgb@32={src}"]) == 0
    assert "tokenizer tok_rgb@32: DiVAE (pixels)  V=50  N=16 at 32px, decoder: diffusion" in capsys.readouterr().out
    tok = Ml4mDiVAE.from_pretrained(out / "tokenizers" / "tok_rgb@32")
    assert (tok.vocab_size, tok.num_tokens, tok.cfg.domain) == (50, 16, "tok_rgb@32")
    record = json.loads((out / "ml4m_modalities.json").read_text())["tokenizers"]["tok_rgb@32"]
    assert record["kind"] == "DiVAE" and record["encoder_only"] is False and "decoder" not in record.get("left_out", {})
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(Ml4mVQVAE.from_pretrained(out / "tokenizers" / "tok_rgb@32").encode(images), tok.encode(images))
    assert tok.decode(tok.encode(images), steps=1).shape == (1, 3, 32, 32)
    # a DiVAE whose decoder fourm lacks (UViT) still gives its encoder, as before
    uvit = _source(tmp_path, {"codebook_size": 50, "dec_type": "uvit_b"}, vocab_50, name="uvit")
    assert convert_main(["ml4m", str(fm), str(tmp_path / "b2"), "--tokenizer", f"tok_rgb@32={uvit}"]) == 0
    assert "DiVAE (pixels)  V=50  N=16 at 32px, encoder only" in capsys.readouterr().out
    assert not (tmp_path / "b2" / "tokenizers" / "tok_rgb@32" / DECODER_DIR).exists()


# ------------------------------------------------------------------------------ errors: one line each
def _drop(key):
    return lambda s: s.pop(key)


def _reshape(key):
    return lambda s: s.__setitem__(key, s[key][:-1].contiguous())


@pytest.mark.parametrize(
    "changes, state_change, message",
    [
        (None, _drop("decoder.out.2.weight"), "missing weight 'decoder.out.2.weight'"),
        (None, _reshape("decoder.middle_block.1.qkv.weight"), "weight 'decoder.middle_block.1.qkv.weight' has shape"),
        (None, lambda s: s.__setitem__("decoder.extra.weight", torch.zeros(2)), "unexpected weight(s) decoder.extra.weight"),
        (None, lambda s: [s.pop(k) for k in list(s) if k.startswith("decoder.")], "no diffusion decoder weights"),
        (None, _drop("encoder.blocks.0.norm1.weight"), "missing weight 'encoder.blocks.0.norm1.weight'"),
        ({"dec_type": "uvit_b"}, None, "UViT diffusion decoder"),
        ({"dec_type": "unet_big"}, None, "dec_type 'unet_big' is not supported"),
        ({"dec_type": "controlnet_sd", "sd_path": "x"}, None, "VQControlNet"),  # the CLI: the VQ-VAE reader's error
        ({"scheduler": "pndm"}, None, "scheduler 'pndm' is not supported"),
        ({"beta_schedule": "cosine"}, None, "beta_schedule 'cosine' is not supported"),
        ({"beta_schedule": "shifted_cosine:abc"}, None, "the shift must be a positive number"),
        ({"beta_schedule": "sigmoid", "scheduler": "ddim"}, None, "only with the ddpm scheduler"),
        ({"prediction_type": "x0"}, None, "prediction_type 'x0' is not supported"),
        ({"thresholding": "yes"}, None, "thresholding must be true or false"),
        ({"num_train_timesteps": 0}, None, "num_train_timesteps must be a positive integer"),
        ({"mystery_key": 1}, None, "unknown ml-4m tokenizer config key(s) mystery_key"),
    ],
)
def test_bad_checkpoints_give_one_line_errors(tmp_path, capsys, changes, state_change, message):
    src = _source(tmp_path, changes, state_change)
    with pytest.raises(FourmError) as e:
        load_ml4m_divae(src)
    assert message in str(e.value) and "\n" not in str(e.value) and str(src) in str(e.value)
    assert convert_main(["ml4m-tokenizer", str(src), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert (message if message != "VQControlNet" else "--encoder-only") in err and err.strip().count("\n") == 0


def test_decoder_errors_point_to_encoder_only(tmp_path):
    src = _source(tmp_path, state_change=_drop("decoder.out.0.bias"))
    with pytest.raises(FourmError, match="--encoder-only"):
        load_ml4m_divae(src)
    assert convert_main(["ml4m-tokenizer", str(src), str(tmp_path / "enc"), "--encoder-only"]) == 0


def test_not_a_divae_and_damaged_files(tmp_path):
    with pytest.raises(FourmError, match="not a DiVAE"):
        ml4m_divae_to_fourm({"enc_type": "vit_b_enc", "dec_type": "vit_b_dec"}, {})
    src = _source(tmp_path)
    (src / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(FourmError, match="corrupt weights file") as e:
        load_ml4m_divae(src)
    assert "\n" not in str(e.value)
    (src / "model.safetensors").unlink()
    with pytest.raises(FourmError, match="model.safetensors is missing"):
        load_ml4m_divae(src)


def test_bad_decode_arguments(reference):
    tok, _ = load_ml4m_divae(FIXTURES / "model")
    ids = reference["ids"]
    for kwargs, message in [
        ({"steps": 0}, r"steps must be in \[1, 1000\]"),
        ({"steps": 1001}, r"steps must be in \[1, 1000\]"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"steps": 2, "image_size": 30}, "multiples of 8"),
        ({"steps": 2, "scheduler": "euler"}, "unknown scheduler 'euler'"),
        ({"steps": 2, "scheduler": "ddim", "timestep_spacing": "random"}, "unknown timestep spacing"),
        ({"steps": 2, "noise": torch.zeros(1, 3, 32, 32)}, r"noise must have shape \(2, 3, 32, 32\)"),
    ]:
        with pytest.raises(FourmError, match=message) as e:
            tok.decode(ids, **kwargs)
        assert "\n" not in str(e.value)
    with pytest.raises(FourmError, match=r"token ids must be in \[0, 63\]"):
        tok.decode(ids + 64, steps=1)
    with pytest.raises(FourmError, match="do not form a square grid"):
        tok.decode(ids[:, :15], steps=1)


def test_damaged_converted_directory(tmp_path):
    convert_ml4m_divae(FIXTURES / "model", tmp_path / "tok")
    shutil.rmtree(tmp_path / "tok" / DECODER_DIR)
    with pytest.raises(FourmError, match="not a converted ml-4m DiVAE"):
        Ml4mDiVAE.from_pretrained(tmp_path / "tok")
    convert_ml4m_divae(FIXTURES / "model", tmp_path / "tok2")
    weights = tmp_path / "tok2" / DECODER_DIR / "model.safetensors"
    state = load_file(str(weights))
    state["conv_out.bias"] = state["conv_out.bias"][:-1].contiguous()
    save_file(state, str(weights))
    with pytest.raises(FourmError, match="do not match its config") as e:
        Ml4mDiVAE.from_pretrained(tmp_path / "tok2")
    assert "\n" not in str(e.value)
