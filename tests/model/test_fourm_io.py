"""save_pretrained / from_pretrained round trip and clear errors; parameter counts."""

import json

import pytest
import torch
from fourm_testing import toy_config, two_sample_batch

from fourm.errors import FourmError
from fourm.model import FourM


@pytest.mark.parametrize("tie", [False, True])
def test_round_trip_gives_identical_logits(tmp_path, tie):
    model = FourM(toy_config(tie_embeddings=tie, qk_norm=True)).eval()
    with torch.no_grad():  # move away from init so a fresh model would differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = FourM.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == model.config
    batch = two_sample_batch()
    a, b = model(batch), loaded(batch)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FourmError, match="model directory not found"):
        FourM.from_pretrained(tmp_path / "nope")
    model = FourM(toy_config())
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(FourmError, match="corrupt weights file"):
        FourM.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(FourmError, match="model.safetensors is missing"):
        FourM.from_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(FourmError, match="malformed config file"):
        FourM.from_pretrained(tmp_path / "m")


def test_mismatched_config_and_weights(tmp_path):
    FourM(toy_config()).save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["modalities"]["rgb"]["vocab_size"] = 33
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(FourmError, match="does not match .*expected"):
        FourM.from_pretrained(tmp_path / "m")
    config["modalities"]["rgb"]["vocab_size"] = 32
    config["enc_depth"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(FourmError, match="does not match .*missing"):
        FourM.from_pretrained(tmp_path / "m")


def test_num_parameters_breakdown_and_summary():
    config = toy_config()
    model = FourM(config)
    n = model.num_parameters(breakdown=True)
    assert n["total"] == model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert n["trunk"] == n["encoder"] + n["decoder"]
    assert n["total"] == n["trunk"] + n["embeddings"] + n["heads"]
    total_vocab = sum(m.vocab_size for m in config.modalities.values())
    assert n["heads"] == total_vocab * config.dim
    # encoder block: qkv + proj (4 d^2) + SwiGLU (3 d h) + 2 norms; plus the final norm
    d, h = config.dim, config.mlp_hidden
    assert n["encoder"] == config.enc_depth * (4 * d * d + 3 * d * h + 2 * d) + d
    text = model.summary()
    assert "trunk" in text and f"{n['total']:,}" in text


def test_saves_are_byte_reproducible_across_processes(tmp_path):
    """Same weights -> same bytes, even from another process (safetensors writes a multi-key metadata
    dict in a per-process random order, so the files carry one key)."""
    import subprocess
    import sys

    model = FourM(toy_config())
    model.save_pretrained(tmp_path / "a")
    code = (
        "import sys, torch; from fourm.model import FourM;"
        "m = FourM.from_pretrained(sys.argv[1]); m.save_pretrained(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
