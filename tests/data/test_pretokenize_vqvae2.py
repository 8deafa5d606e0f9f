"""Pre-tokenization of a two-level (VQ-VAE-2) tokenizer as two modalities, rgb_top and rgb_bottom."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourm.cli.data import main as data_main
from fourm.data.pretokenize import build_encoders, pretokenize
from fourm.data.raw_dataset import RawSamples, load_raw_dataset, write_world_dataset
from fourm.data.token_dataset import load_token_dataset
from fourm.data.world import WorldConfig
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, default_registry
from fourm.resources import CONFIG_ROOT
from fourm.testing.bundles import extra_modality_yaml
from fourm.testing.tokenizers import toy_tokenizer

SIZE = 32  # toy: bottom 4x4 = 16 tokens, top 2x2 = 4 tokens, 64 codes
EXTRA = CONFIG_ROOT / "modalities" / "extra"
TOY = {"rgb_top": {"num_tokens": 4}, "rgb_bottom": {"num_tokens": 16}}


def level_yaml(path, name: str, tokenizer: str, **fields) -> str:
    """configs/modalities/extra/<name>.yaml shrunk to the toy tokenizer, written to ``path``."""
    toy = {"vocab_size": 64, "image_size": SIZE, **TOY[name]}
    return extra_modality_yaml(name, path, tokenizer=tokenizer, **{**toy, **fields})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretok_vq2")
    raw = write_world_dataset(
        root / "raw", 16, size=SIZE, seed=5, val_fraction=0.25, config=WorldConfig(size=SIZE)
    )
    tok = toy_tokenizer("rgb_vqvae2", image_size=SIZE, seed=1).eval()
    tok.save_pretrained(root / "tok_vq2")
    conv = toy_tokenizer("rgb", image_size=SIZE, seed=2)
    conv.save_pretrained(root / "tok_conv")
    files = [level_yaml(root / f"{m}.yaml", m, "tok_vq2") for m in TOY]
    registry = ModalityRegistry.from_files(files)
    return root, raw, registry, tok


def reference_levels(tok, arrays: list[np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """The tokenizer's own quantize_levels (fp32), batch by batch -> {"top": (N, 4), "bottom": (N, 16)}."""
    out = {"top": [], "bottom": []}
    with torch.no_grad():
        for b in range(0, len(arrays), batch_size):
            x = tok.preprocess(arrays[b : b + batch_size])
            top, bottom, _ = tok.quantizer.quantize_levels(tok.encoder(tok.network_input(x)))
            out["top"].append(top.indices.reshape(len(x), -1).numpy())
            out["bottom"].append(bottom.indices.reshape(len(x), -1).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def test_each_level_holds_the_tokenizers_own_grid(setup, tmp_path, monkeypatch):
    root, raw, registry, tok = setup
    encoders, info = build_encoders(registry, ["rgb_top", "rgb_bottom"], root, precision="fp32")
    assert info.modalities["rgb_top"].length == 4 and info.modalities["rgb_bottom"].length == 16
    assert info.modalities["rgb_top"].kind == "image" and info.modalities["rgb_bottom"].vocab_size == 64
    calls = []
    original = type(tok).encode
    monkeypatch.setattr(type(tok), "encode", lambda self, x: calls.append(len(x)) or original(self, x))
    pretokenize(raw, tmp_path / "tok", encoders, info, registry, batch_size=5, shard_size=8)
    assert sum(calls) == 16  # one encoder run per batch for both levels (12 train + 4 val images)
    dsd, _ = load_token_dataset(tmp_path / "tok")
    for split in ("train", "val"):
        samples = RawSamples(load_raw_dataset(raw)[split])
        want = reference_levels(tok, [samples[i]["rgb"] for i in range(len(samples))], batch_size=5)
        top, bottom = np.array(dsd[split]["rgb_top"]), np.array(dsd[split]["rgb_bottom"])
        assert top.shape == (len(samples), 4) and bottom.shape == (len(samples), 16)
        assert np.array_equal(top, want["top"]) and np.array_equal(bottom, want["bottom"])
        # joined, the two columns are the tokenizer's one-row tokens
        with torch.no_grad():
            full = tok.encode(tok.preprocess([samples[i]["rgb"] for i in range(len(samples))]))
        assert np.array_equal(np.concatenate([top, bottom], axis=1), full.numpy())


def test_cli_tokenizes_both_levels_with_add_modality(setup, tmp_path, capsys):
    root, raw, _, tok = setup
    files = [level_yaml(tmp_path / f"{m}.yaml", m, "tok_vq2") for m in TOY]
    argv = ["tokenize", "--data", str(raw), "--out", str(tmp_path / "t"), "--modalities", "rgb_top,rgb_bottom",
            "--tokenizer-root", str(root), "--precision", "fp32", "--add-modality", files[0], "--add-modality", files[1]]  # fmt: skip
    assert data_main(argv) == 0, capsys.readouterr().err
    dsd, info = load_token_dataset(tmp_path / "t")
    samples = RawSamples(load_raw_dataset(raw)["val"])
    want = reference_levels(tok, [samples[i]["rgb"] for i in range(len(samples))], batch_size=64)
    assert np.array_equal(np.array(dsd["val"]["rgb_top"]), want["top"])
    assert np.array_equal(np.array(dsd["val"]["rgb_bottom"]), want["bottom"])


def test_level_errors_are_one_line(setup, tmp_path):
    root, *_ = setup
    conv = ModalityRegistry.from_files([level_yaml(tmp_path / "rgb_top.yaml", "rgb_top", "tok_conv")])
    with pytest.raises(FourmError) as err:
        build_encoders(conv, ["rgb_top"], root)
    assert "one token grid" in str(err.value) and "\n" not in str(err.value)
    wrong = ModalityRegistry.from_files(
        [level_yaml(tmp_path / "rgb_bottom.yaml", "rgb_bottom", "tok_vq2", num_tokens=64)]
    )
    with pytest.raises(FourmError) as err:
        build_encoders(wrong, ["rgb_bottom"], root)
    assert "(bottom level) gives 16 tokens" in str(err.value) and "declares 64" in str(err.value)
    assert "\n" not in str(err.value)


def test_single_level_modalities_are_untouched(setup, tmp_path):
    """A plain rgb modality over a conv tokenizer still gets an ImageCodec and its full token row."""
    root, raw, *_ = setup
    spec = {**default_registry()["rgb"].to_dict(), "tokenizer": "tok_conv", "num_tokens": 16, "vocab_size": 64,
            "image_size": SIZE}  # fmt: skip
    registry = ModalityRegistry.from_dict({"rgb": spec})
    encoders, info = build_encoders(registry, ["rgb"], root, precision="fp32")
    pretokenize(raw, tmp_path / "tok", encoders, info, registry, batch_size=5, splits=["val"])
    dsd, _ = load_token_dataset(tmp_path / "tok")
    conv = toy_tokenizer("rgb", image_size=SIZE, seed=2).eval()
    samples = RawSamples(load_raw_dataset(raw)["val"])
    with torch.no_grad():
        want = conv.encode(conv.preprocess([samples[i]["rgb"] for i in range(len(samples))]))
    assert np.array_equal(np.array(dsd["val"]["rgb"]), want.numpy())
