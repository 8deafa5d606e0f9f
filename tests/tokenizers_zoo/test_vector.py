"""Vector tokenizer: token layout, decode, save/load round trip, file errors, and fitting clustered vectors."""

import json

import pytest
import torch
import torch.nn.functional as F

from fourm.errors import FourmError
from tokenizers_zoo.vector import VectorTokenizer, VectorTokenizerConfig

SMALL = dict(input_dim=32, hidden_dim=48, num_layers=1, num_tokens=4, codebook_size=16, code_dim=8)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def clustered_vectors(n: int = 512, dim: int = 32, clusters: int = 12, noise: float = 0.02) -> torch.Tensor:
    centers = F.normalize(torch.randn(clusters, dim), dim=-1)
    return centers[torch.randint(0, clusters, (n,))] + noise * torch.randn(n, dim)


def test_encode_decode_shapes_and_token_layout():
    tok = VectorTokenizer(VectorTokenizerConfig(**SMALL))
    assert tok.num_tokens == 4 and tok.vocab_size == 64
    x = torch.randn(10, 32)
    tokens = tok.encode(x)
    assert tokens.shape == (10, 4) and tokens.dtype == torch.long
    assert torch.equal(tokens // 16, torch.arange(4).expand(10, 4))  # position j uses codebook j's range
    out = tok.decode(tokens)
    assert out.shape == (10, 32)
    torch.testing.assert_close(out, tok.eval()(x).reconstruction)


def test_encode_has_no_side_effects_in_training_mode():
    tok = VectorTokenizer(VectorTokenizerConfig(**SMALL)).train()
    x = torch.randn(64, 32)
    before = {k: v.clone() for k, v in tok.state_dict().items()}
    first = tok.encode(x)
    assert tok.training
    for k, v in tok.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(tok.encode(x), first)


def test_save_load_round_trip(tmp_path):
    tok = VectorTokenizer(VectorTokenizerConfig(**SMALL))
    x = clustered_vectors(128)
    tok.fit(x, steps=5, lr=1e-3, batch_size=64, progress=False)  # non-trivial codebooks and EMA buffers
    tok.save_pretrained(tmp_path / "vec")
    assert sorted(p.name for p in (tmp_path / "vec").iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "vec" / "config.json").read_text())["num_tokens"] == 4
    loaded = VectorTokenizer.from_pretrained(tmp_path / "vec")
    assert loaded.cfg == tok.cfg
    tokens = tok.encode(x)
    assert torch.equal(loaded.encode(x), tokens)
    torch.testing.assert_close(loaded.decode(tokens), tok.decode(tokens), atol=0, rtol=0)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FourmError, match="not found"):
        VectorTokenizer.from_pretrained(tmp_path / "nope")
    VectorTokenizer(VectorTokenizerConfig(**SMALL)).save_pretrained(tmp_path / "vec")
    weights = tmp_path / "vec" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(FourmError, match="corrupt weights"):
        VectorTokenizer.from_pretrained(tmp_path / "vec")
    weights.unlink()
    with pytest.raises(FourmError, match="missing model.safetensors"):
        VectorTokenizer.from_pretrained(tmp_path / "vec")
    VectorTokenizer(VectorTokenizerConfig(**SMALL)).save_pretrained(tmp_path / "vec")
    (tmp_path / "vec" / "config.json").write_text("{not json")
    with pytest.raises(FourmError, match="malformed"):
        VectorTokenizer.from_pretrained(tmp_path / "vec")
    (tmp_path / "vec" / "config.json").write_text(json.dumps({**SMALL, "num_tokens": 5}))
    with pytest.raises(FourmError, match="do not match"):
        VectorTokenizer.from_pretrained(tmp_path / "vec")


def test_bad_inputs_raise_fourm_errors():
    tok = VectorTokenizer(VectorTokenizerConfig(**SMALL))
    with pytest.raises(FourmError, match=r"\(B, 32\)"):
        tok.encode(torch.randn(3, 31))
    with pytest.raises(FourmError, match="out of range"):
        tok.decode(torch.tensor([[0, 16, 32, 47 + 1 + 16]]))
    with pytest.raises(FourmError, match="out of range"):
        tok.decode(torch.tensor([[16, 16, 32, 48]]))  # position 0 must be in [0, 16)
    with pytest.raises(FourmError, match=r"\(B, 4\)"):
        tok.decode(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(FourmError, match="num_tokens"):
        VectorTokenizerConfig.from_dict({"num_tokens": 0})


def test_fit_reaches_high_cosine_on_clustered_vectors():
    x = clustered_vectors(512)
    tok = VectorTokenizer(VectorTokenizerConfig(**SMALL))
    result = tok.fit(x, steps=300, lr=3e-3, batch_size=128, progress=False)
    assert result["cosine"] > 0.95
    assert result["usage"] > 0.5
    recon = tok.decode(tok.encode(x))
    assert F.cosine_similarity(recon, x, dim=-1).mean() > 0.95


def test_decode_probs_of_one_hot_codes_equals_decode():
    torch.manual_seed(0)
    tok = VectorTokenizer(VectorTokenizerConfig(input_dim=12, hidden_dim=16, num_tokens=3, codebook_size=8, code_dim=4))
    tok.eval()
    tokens = torch.randint(0, 8, (5, 3)) + tok.token_offsets
    one_hot = torch.nn.functional.one_hot(tokens - tok.token_offsets, 8).float()  # (5, 3, 8)
    torch.testing.assert_close(tok.decode_probs(one_hot), tok.decode(tokens))
    mixed = 0.5 * one_hot + 0.5 * one_hot.roll(1, dims=0)  # halfway between two samples' codes
    assert not torch.allclose(tok.decode_probs(mixed), tok.decode(tokens))
    with pytest.raises(FourmError, match="code probabilities of shape"):
        tok.decode_probs(one_hot[:, :2])
