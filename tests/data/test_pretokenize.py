"""Pre-tokenization: raw world dataset -> token dataset, equal to direct encoding, resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fourm.cli.data import main as data_main
from fourm.core.patches import patchify
from fourm.data.pretokenize import PretokenizeReport, build_encoders, pretokenize
from fourm.data.raw_dataset import RawSamples, load_raw_dataset, write_world_dataset
from fourm.data.token_dataset import ModalityTokens, TokenSamples, load_token_dataset
from fourm.data.world import WorldConfig
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, default_registry
from fourm.testing.tokenizers import toy_tokenizer
from fourm.utils.precision import bf16_autocast
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
    with torch.no_grad(), bf16_autocast("cpu"):  # precision auto: bf16 only on a bf16-capable CPU
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


def test_cli_fits_the_registry_to_a_retrained_tokenizer_on_another_grid(setup, tmp_path, capsys):
    """--tokenizer rgb=DIR of a tokenizer on a finer grid with fewer codes: the token dataset holds its
    tokens and declares their length and vocabulary (before: refused, the registry declared the old
    ones); the registry's own tokenizer on another grid is still refused."""
    root, raw, registry, rgb, _ = setup
    fine = toy_tokenizer("rgb", "quantizer.codebook_size=32", "downsample=4", "channel_mult=[1,1,2]", image_size=32, seed=1)
    fine.save_pretrained(tmp_path / "tok_fine")
    assert (fine.num_tokens, rgb.num_tokens) == (64, 16)
    reg_dir = tmp_path / "registry"
    reg_dir.mkdir()
    (reg_dir / "rgb.yaml").write_text(yaml.safe_dump({**registry["rgb"].to_dict(), "tokenizer": str(root / "tok_rgb")}))
    argv = ["tokenize", "--data", str(raw), "--out", str(tmp_path / "t"), "--registry", str(reg_dir), "--modalities", "rgb",
            "--tokenizer", f"rgb={tmp_path / 'tok_fine'}"]  # fmt: skip
    assert data_main(argv) == 0, capsys.readouterr().err
    assert "64 tokens of vocabulary 32" in capsys.readouterr().out
    dsd, info = load_token_dataset(tmp_path / "t")
    assert (info.modalities["rgb"].length, info.modalities["rgb"].vocab_size) == (64, 32)
    samples = RawSamples(load_raw_dataset(raw)["val"])
    fine.eval()
    with torch.no_grad(), bf16_autocast("cpu"):
        want = fine.encode(fine.preprocess([samples[i]["rgb"] for i in range(len(samples))])).reshape(len(samples), -1)
    assert (np.array(dsd["val"]["rgb"]) == want.numpy()).mean() > 0.98
    (reg_dir / "rgb.yaml").write_text(yaml.safe_dump({**registry["rgb"].to_dict(), "tokenizer": str(tmp_path / "tok_fine")}))
    argv = ["tokenize", "--data", str(raw), "--out", str(tmp_path / "t2"), "--registry", str(reg_dir), "--modalities", "rgb"]
    assert data_main(argv) == 2
    assert "gives 64 tokens of vocabulary 32, but modality 'rgb' declares 16 tokens of vocabulary 64" in capsys.readouterr().err


# ---- patch modalities ------------------------------------------------------------------------------

PIXELS_YAML = Path(__file__).resolve().parents[2] / "configs" / "modalities" / "extra" / "rgb_pixels.yaml"


def _pixels_registry(**changes) -> ModalityRegistry:
    spec = ModalityRegistry.from_files([PIXELS_YAML])["rgb_pixels"].to_dict()
    return ModalityRegistry.from_dict({"rgb_pixels": {**spec, **changes}})


def test_patch_modality_needs_no_tokenizer(setup, tmp_path):
    _, raw, *_ = setup
    registry = _pixels_registry(image_size=32, num_tokens=16)  # the fixture's world is 32 x 32
    encoders, info = build_encoders(registry, ["rgb_pixels"], tmp_path / "no_tokenizers_here")
    assert info.modalities["rgb_pixels"] == ModalityTokens("image", vocab_size=256, length=16, patch_dim=192)
    pretokenize(raw, tmp_path / "tok", encoders, info, registry, batch_size=5, shard_size=7)
    dsd, info2 = load_token_dataset(tmp_path / "tok")
    assert info2 == info
    samples = RawSamples(load_raw_dataset(raw)["val"])
    items = TokenSamples(dsd["val"])
    assert len(items) == len(samples) == 6
    for i in range(len(items)):
        got = items[i]["rgb_pixels"].reshape(16, 192).numpy()
        assert np.array_equal(got, patchify(samples[i]["rgb"], 8))


def test_patch_modality_checks_the_image_shape(setup, tmp_path):
    _, raw, *_ = setup
    registry = _pixels_registry()  # 64 x 64, the fixture's images are 32 x 32
    encoders, info = build_encoders(registry, ["rgb_pixels"], tmp_path)
    with pytest.raises(FourmError, match=r"modality 'rgb_pixels': expected an image of shape \(64, 64, 3\).*\(32, 32, 3\)"):
        pretokenize(raw, tmp_path / "tok", encoders, info, registry)


def test_cli_adds_a_patch_modality(setup, tmp_path, capsys):
    root, *_ = setup
    raw = write_world_dataset(tmp_path / "raw", 4, size=64, seed=1, val_fraction=0.25, num_workers=0)
    common = ["tokenize", "--data", str(raw), "--add-modality", str(PIXELS_YAML)]
    argv = [*common, "--out", str(tmp_path / "a"), "--modalities", "caption,rgb_pixels",
            "--tokenizer", f"caption={root / 'tok_text'}"]  # fmt: skip
    assert data_main(argv) == 0, capsys.readouterr().err
    # default list: the modalities with a tokenizer, and patch modalities
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "caption.yaml").write_text(
        yaml.safe_dump({**default_registry()["caption"].to_dict(), "tokenizer": str(root / "tok_text")})
    )
    argv = [*common, "--out", str(tmp_path / "b"), "--registry", str(registry)]
    assert data_main(argv) == 0, capsys.readouterr().err
    samples = RawSamples(load_raw_dataset(raw)["train"])
    for out in ("a", "b"):
        dsd, info = load_token_dataset(tmp_path / out)
        assert set(info.modalities) == {"caption", "rgb_pixels"} and info.modalities["rgb_pixels"].patch_dim == 192
        row = np.array(dsd["train"][0]["rgb_pixels"]).reshape(64, 192)
        assert np.array_equal(row, patchify(samples[0]["rgb"], 8)) and dsd["train"][0]["caption"]


def test_fp32_precision_encodes_without_autocast_and_guards_resume(setup, tmp_path):
    root, raw, registry, rgb, _ = setup
    encoders, info = build_encoders(registry, ["rgb"], root, precision="fp32")
    pretokenize(raw, tmp_path / "tok", encoders, info, registry, batch_size=5, shard_size=7)
    samples = RawSamples(load_raw_dataset(raw)["val"])
    with torch.no_grad():
        want = rgb.eval().encode(rgb.preprocess([samples[i]["rgb"] for i in range(len(samples))]))
    assert np.array_equal(np.array(load_token_dataset(tmp_path / "tok")[0]["val"]["rgb"]), want.numpy())
    with pytest.raises(FourmError, match="precision must be one of auto, bf16, fp32"):
        build_encoders(registry, ["rgb"], root, precision="fp16")
    # an interrupted bf16 run is not resumed in fp32 (its shards would mix two precisions)
    partial = tmp_path / "mixed.partial"
    partial.mkdir()
    (partial / "manifest.json").write_text(
        json.dumps({"modalities": ["rgb"], "shard_size": 7, "raw": str(Path(raw).resolve())})
    )
    with pytest.raises(FourmError, match="interrupted run with other settings"):
        pretokenize(raw, tmp_path / "mixed", encoders, info, registry, shard_size=7, settings={"precision": "fp32"})


def _run_tokenize(raw, out, root, env_extra: dict) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(env_extra, OMP_NUM_THREADS="1")
    args = ["tokenize", "--data", str(raw), "--out", str(out), "--registry", str(root / "registry"),
            "--tokenizer-root", str(root), "--modalities", "rgb,caption,bboxes", "--shard-size", "4",
            "--batch-size", "3", "--precision", "fp32"]
    return subprocess.Popen([sys.executable, "-m", "fourm.cli.data", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_processes_write_the_same_dataset_as_one(setup, tmp_path):
    root, raw, registry, *_ = setup
    reg_dir = root / "registry"
    if not reg_dir.exists():
        reg_dir.mkdir()
        for name in ("rgb", "caption", "bboxes"):
            (reg_dir / f"{name}.yaml").write_text(yaml.safe_dump(registry[name].to_dict()))
    one = _run_tokenize(raw, tmp_path / "one", root, {})
    assert one.wait(timeout=300) == 0, one.stderr.read()
    procs = [_run_tokenize(raw, tmp_path / "two", root, {"RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r)})
             for r in (1, 0)]  # process 1 first: it waits for process 0's manifest
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    a, info_a = load_token_dataset(tmp_path / "one")
    b, info_b = load_token_dataset(tmp_path / "two")
    assert info_a == info_b and set(a) == set(b) == {"train", "val"}
    for split in a:
        for col in ("id", "rgb", "caption", "bboxes"):
            assert a[split][col] == b[split][col], (split, col)
    assert not (tmp_path / "two.partial").exists()
