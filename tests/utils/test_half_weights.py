"""fp16 packing of safetensors weights (fourm-pack)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from fourm.cli.pack import main as pack_main
from fourm.errors import FourmError
from fourm.testing.tokenizers import toy_tokenizer
from fourm.utils.half_weights import halve_safetensors


def test_halve_rounds_floats_and_keeps_the_rest(tmp_path):
    path = tmp_path / "w.safetensors"
    weights = torch.randn(64, 64)
    big = torch.tensor([1.0e6, 2.0])  # beyond fp16's range: must stay fp32
    ints = torch.arange(5)
    save_file({"w": weights, "big": big, "ints": ints}, str(path))
    before, after = halve_safetensors(path)
    assert after < before * 0.6
    state = load_file(str(path))
    assert state["w"].dtype == torch.float16 and torch.equal(state["w"], weights.half())
    assert state["big"].dtype == torch.float32 and torch.equal(state["big"], big)
    assert torch.equal(state["ints"], ints)


def test_pack_cli_round_trips_a_tokenizer(tmp_path):
    tok = toy_tokenizer("rgb")
    tok.save_pretrained(tmp_path / "src")
    assert pack_main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    loaded = type(tok).from_pretrained(tmp_path / "dst")
    for (name, a), b in zip(tok.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == a.dtype, name  # loads back into the model's own dtype
        expected = a.half().to(a.dtype) if a.is_floating_point() and a.abs().max() < 65504 else a
        assert torch.equal(b, expected), name


def test_pack_rejects_a_directory_without_config(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    assert pack_main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 2
    assert "no config.json" in capsys.readouterr().err
    with pytest.raises(FourmError, match="not found"):
        halve_safetensors(tmp_path / "missing.safetensors")

