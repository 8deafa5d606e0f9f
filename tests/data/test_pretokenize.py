"""Pre-tokenization: raw world dataset -> token dataset, equal to direct encoding, resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourm.cli.data import main as data_main
from fourm.data.pretokenize import PretokenizeReport, build_encoders, pretokenize
from fourm.data.raw_dataset import RawSamples, load_raw_dataset, write_world_dataset
from fourm.data.token_dataset import load_token_dataset
from fourm.data.world import WorldConfig
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, default_registry
from tokenizers_zoo.image.testing import toy_tokenizer
from tokenizers_zoo.text import TextTokenizer, corpus_from_samples


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretok")
    raw = write_world_dataset(root / "raw", 24, size=32, seed=3, val_fraction=0.25, config=WorldConfig(size=32))
    samples = RawSamples(load_raw_dataset(raw)["train"])
    rgb = toy_tokenizer("rgb", "quantizer.codebook_size=64", image_size=32)
    rgb.save_pretrained(root / "tok_rgb")
    text = TextTokenizer.train(corpus_from_samples(samples[i] for i in range(len(samples))), vocab_size=600)
    text.save_pretrained(root / "tok_text")
    base = default_registry()
    registry = ModalityRegistry.from_dict(
        {
            "rgb": {**base["rgb"].to_dict(), "tokenizer": "tok_rgb", "num_tokens": rgb.num_tokens, "vocab_size": 64,
                    "image_size": 32},
            "caption": {**base["caption"].to_dict(), "tokenizer": "tok_text"},
            "bboxes": {**base["bboxes"].to_dict(), "tokenizer": "tok_text"},
        }
    )
    return root, raw, registry, rgb, text


def test_tokens_equal_direct_encoding(setup, tmp_path):
    root, raw, registry, rgb, text = setup
    encoders, info = build_encoders(registry, ["rgb", "caption", "bboxes"], root)
    report = pretokenize(raw, tmp_path / "tok", encoders, info, registry, batch_size=5, shard_size=7)
    assert report.samples == {"train": 18, "val": 6} and report.shards_done == 3 + 1
    dsd, info2 = load_token_dataset(tmp_path / "tok")
    assert info2.specials.eos == text.eos_id and info2.modalities["rgb"].length == rgb.num_tokens
    samples = RawSamples(load_raw_dataset(raw)["val"])
    rgb.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = rgb.encode(rgb.preprocess([samples[i]["rgb"] for i in range(len(samples))]))
    got = np.array(dsd["val"]["rgb"])
    assert (got == want.numpy()).mean() > 0.98  # batching may flip rare ties under bf16
    cap_ids, lengths = text.encode_modality("caption", [samples[0]["caption"]], 48)
    assert dsd["val"][0]["caption"] == cap_ids[0, : lengths[0]].tolist()
    assert dsd["val"][0]["caption"][-1] == text.eos_id
    assert text.decode_modality("bboxes", [dsd["val"][0]["bboxes"]], strict=True)[0][0]["label"] == (
        samples[0]["bboxes"][0]["label"]
    )
    assert not (tmp_path / "tok.partial").exists()


def test_resume_after_interruption(setup, tmp_path):
    root, raw, registry, *_ = setup
    encoders, info = build_encoders(registry, ["caption"], root)
    calls = {"n": 0}
    real = encoders["caption"]

    def flaky(values):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(values)

    with pytest.raises(RuntimeError):
        pretokenize(raw, tmp_path / "tok", {"caption": flaky}, info, registry, batch_size=7, shard_size=7)
    assert not (tmp_path / "tok").exists()
    shards = sorted((tmp_path / "tok.partial" / "train").glob("shard_*.jsonl"))
    assert len(shards) == 2  # two shards finished before the crash
    report = PretokenizeReport()
    pretokenize(raw, tmp_path / "tok", encoders, info, registry, batch_size=7, shard_size=7, report=report)
    assert report.shards_resumed == 2
    pretokenize(raw, tmp_path / "fresh", encoders, info, registry, batch_size=7, shard_size=7)
    a, _ = load_token_dataset(tmp_path / "tok")
    b, _ = load_token_dataset(tmp_path / "fresh")
    assert a["train"]["caption"] == b["train"]["caption"] and a["val"]["id"] == b["val"]["id"]


def test_cli_errors(setup, tmp_path, capsys):
    root, raw, *_ = setup
    assert data_main(["tokenize", "--data", str(raw), "--out", str(tmp_path / "t"), "--modalities", "rgbb"]) == 2
    assert "unknown modality 'rgbb'" in capsys.readouterr().err
    assert data_main(["tokenize", "--data", str(raw), "--out", str(tmp_path / "t"), "--modalities", "rgb",
                      "--tokenizer", "rgb"]) == 2
    assert "malformed --tokenizer" in capsys.readouterr().err


def test_missing_tokenizer_is_a_clear_error(setup, tmp_path):
    root, raw, registry, *_ = setup
    with pytest.raises(FourmError):
        build_encoders(registry, ["rgb"], tmp_path)  # no tokenizer under this root


def test_cli_tokenizer_override_is_relative_to_the_working_directory(setup, tmp_path, monkeypatch, capsys):
    """--tokenizer-root applies to the registry's paths; a --tokenizer PATH is read from the cwd."""
    root, raw, *_ = setup
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(root)  # tok_text is here, not under --tokenizer-root
    argv = ["tokenize", "--data", str(raw), "--out", str(tmp_path / "t"), "--modalities", "caption",
            "--tokenizer-root", str(tmp_path / "elsewhere"), "--tokenizer", "caption=tok_text"]  # fmt: skip
    assert data_main(argv) == 0, capsys.readouterr().err
    dsd, _ = load_token_dataset(tmp_path / "t")
    assert len(dsd["train"]) == 18 and dsd["train"][0]["caption"]
