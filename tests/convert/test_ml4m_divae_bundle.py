"""A converted ml-4m bundle whose tok_rgb@32 tokenizer is a DiVAE (tests/fixtures/ml4m/divae, cut to the
FM fixture's vocabulary of 50): ``convert_ml4m`` writes it with its diffusion decoder, the bundle loads
it as an :class:`Ml4mDiVAE`, and ``FourMPipeline.detokenize`` / ``generate`` / ``generate.py`` decode
its tokens into images: exactly what ``Ml4mDiVAE.decode`` gives for the same seed and steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ml4m_reference import ml4m_config
from ml4m_reference import random_state as fm_state
from ml4m_reference import write_checkpoint as write_fm
from ml4m_text_reference import build_wordpiece
from PIL import Image
from safetensors.torch import load_file, save_file

import fourm.convert.ml4m_divae as divae_conv
import fourm.convert.ml4m_vqvae as vq_conv
from fourm.cli.generate import main as generate_main
from fourm.codecs import DIVAE_STEPS, Ml4mImageCodec
from fourm.convert.ml4m import convert_ml4m, load_ml4m_tokenizer
from fourm.convert.ml4m_vqvae import load_ml4m_vqvae
from fourm.errors import FourmError
from fourm.generation.pipeline import FourMPipeline
from tokenizers_zoo.image.ml4m_divae import DECODER_DIR, Ml4mDiVAE
from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ml4m" / "divae"
RECORD = json.loads((FIXTURES / "cases.json").read_text())
NAME = "tok_rgb@32"


def _tiny_presets(mp: pytest.MonkeyPatch) -> None:
    """ml-4m's vit_b encoder and unet_patched decoder at the fixture's sizes (conversion only)."""
    vit = RECORD["presets"]["vit_b_enc"]
    mp.setitem(vq_conv.VIT_PRESETS, "vit_b", (vit["dim_tokens"], vit["depth"], vit["num_heads"]))
    mp.setitem(divae_conv.UNET_PRESETS, "unet_patched", {**RECORD["presets"]["unet_patched"], "num_heads": 1})


def _divae_source(root: Path) -> Path:
    """The fixture DiVAE with its codebook cut to 50 codes (the FM fixture's tok_rgb@32 vocabulary)."""
    src = root / "divae"
    shutil.copytree(FIXTURES / "model", src)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "codebook_size": 50}))
    state = load_file(str(src / "model.safetensors"))
    for key in ("quantize._codebook.embed", "quantize._codebook.cluster_size"):
        state[key] = state[key][:50].contiguous()
    save_file(state, str(src / "model.safetensors"))
    return src


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ml4m_divae_bundle")
    cfg = ml4m_config()
    fm = write_fm(root / "fm", cfg, fm_state(cfg, seed=1))
    text = build_wordpiece(root / "text" / "tokenizer.json", num_sentinels=3, bins=2, classes=("dog",), extra=12,
                           corpus=["a dog", "a cat on a mat"])
    with pytest.MonkeyPatch.context() as mp:
        _tiny_presets(mp)
        convert_ml4m(fm, root / "out", tokenizers={"text": text, NAME: _divae_source(root)})
    return root / "out"


@pytest.fixture(scope="module")
def pipe(bundle) -> FourMPipeline:
    return FourMPipeline.from_pretrained(bundle, device="cpu")


@pytest.fixture(scope="module")
def divae(bundle) -> Ml4mDiVAE:
    return Ml4mDiVAE.from_pretrained(bundle / "tokenizers" / NAME)


def _pixels(x: torch.Tensor) -> list[np.ndarray]:
    """Decoder output (B, 3, H, W) in [-1, 1] -> uint8 (H, W, 3) per row, as the codec shows rgb."""
    return [row.permute(1, 2, 0).numpy() for row in ((x.clamp(-1, 1) + 1) * 127.5).round().byte()]


def _ids(seed: int, n: int = 2) -> torch.Tensor:
    return torch.randint(0, 50, (n, 16), generator=torch.Generator().manual_seed(seed))


def test_bundle_holds_the_diffusion_decoder(bundle, pipe):
    assert (bundle / "tokenizers" / NAME / DECODER_DIR / "model.safetensors").is_file()
    record = json.loads((bundle / "ml4m_modalities.json").read_text())["tokenizers"][NAME]
    assert record["kind"] == "DiVAE" and record["encoder_only"] is False and "diffusion (unet_patched" in record["decoder"]
    codec = pipe.codecs[NAME]
    assert isinstance(codec, Ml4mImageCodec) and isinstance(codec.tokenizer, Ml4mDiVAE)
    assert codec.can_decode and codec.diffusion and codec.diffusion_steps == DIVAE_STEPS == 25


def test_detokenize_equals_divae_decode(pipe, divae):
    ids = _ids(0)
    got = pipe.detokenize(NAME, ids, seed=3)
    want = _pixels(divae.decode(ids, steps=DIVAE_STEPS, seed=3))
    assert len(got) == 2 and all(g.shape == (32, 32, 3) and g.dtype == np.uint8 for g in got)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    codec = pipe.codecs[NAME]
    assert torch.equal(codec.decode_raw(ids, seed=3), divae.decode(ids, steps=DIVAE_STEPS, seed=3))
    # steps per call and on the codec; another seed gives another image
    assert torch.equal(codec.decode_raw(ids, seed=5, steps=2), divae.decode(ids, steps=2, seed=5))
    codec.diffusion_steps = 3
    try:
        three = pipe.detokenize(NAME, ids, seed=3)
    finally:
        codec.diffusion_steps = DIVAE_STEPS
    assert all(np.array_equal(g, w) for g, w in zip(three, _pixels(divae.decode(ids, steps=3, seed=3))))
    other = pipe.detokenize(NAME, ids, seed=4)
    assert not all(np.array_equal(g, o) for g, o in zip(got, other))


def test_encode_decode_of_an_image(pipe, divae):
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    ids = pipe.tokenize(NAME, [image])
    assert ids.shape == (1, 16) and int(ids.max()) < 50
    assert np.array_equal(pipe.detokenize(NAME, ids, seed=1)[0], _pixels(divae.decode(ids, steps=DIVAE_STEPS, seed=1))[0])


def test_generate_decodes_with_the_seed(pipe, divae):
    result = pipe.generate({"caption": "a dog"}, [NAME], num_samples=2, seed=7, progress=False)
    tokens = result.tokens[NAME]
    assert tokens.shape == (2, 16)
    want = _pixels(divae.decode(tokens, steps=DIVAE_STEPS, seed=7))
    assert all(np.array_equal(g, w) for g, w in zip(result.values[NAME], want))


def test_generate_cli_writes_decoded_images(bundle, divae, tmp_path, capsys):
    out = tmp_path / "gen"
    args = ["--model", str(bundle), "--cond", "caption=a dog", "--target", NAME, "--device", "cpu", "--out", str(out),
            "--no-progress", "--steps", f"{NAME}=2", "--seed", "2"]
    assert generate_main(args) == 0, capsys.readouterr().err
    png = np.asarray(Image.open(out / "sample_000" / f"{NAME}.png").convert("RGB"))
    assert png.shape == (32, 32, 3)
    info = json.loads((out / "sequences.json").read_text())
    assert info["targets"] == [NAME]


def test_load_ml4m_tokenizer_picks_the_divae(tmp_path, monkeypatch):
    _tiny_presets(monkeypatch)
    src = _divae_source(tmp_path)
    tok, entry = load_ml4m_tokenizer(src, domain=NAME)
    assert isinstance(tok, Ml4mDiVAE) and entry["kind"] == "DiVAE" and entry["encoder_only"] is False
    enc, entry = load_ml4m_tokenizer(src, encoder_only=True)
    assert isinstance(enc, Ml4mVQVAE) and enc.cfg.decoder is None and entry["encoder_only"] is True
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(enc.encode(images), tok.encode(images))
    # the VQ-VAE reader alone points to the DiVAE converter
    with pytest.raises(FourmError, match="fourm.convert.ml4m_divae.load_ml4m_divae") as e:
        load_ml4m_vqvae(src)
    assert "\n" not in str(e.value) and "not supported yet" not in str(e.value)
