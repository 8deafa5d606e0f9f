"""A tiny model memorises a handful of real procedural-world samples (tokenized with tiny untrained
tokenizers): its loss falls well below the unigram entropy of the target tokens. Training uses the
fixed evaluation masks, so the handful of samples is one fixed input -> target mapping to learn."""

from __future__ import annotations

import numpy as np
import pytest
from training_testing import tiny_config

from fourm.data.pretokenize import build_encoders, pretokenize
from fourm.data.raw_dataset import RawSamples, load_raw_dataset, write_world_dataset
from fourm.data.token_dataset import load_token_dataset
from fourm.data.world import WorldConfig
from fourm.modalities import ModalityRegistry, default_registry
from fourm.testing.tokenizers import toy_tokenizer
from fourm.training import train
from tokenizers_zoo.text import TextTokenizer, corpus_from_samples


@pytest.fixture(scope="module")
def world_tokens(tmp_path_factory):
    """8 world samples (32x32) -> rgb tokens (toy VQ tokenizer, 16 tokens) and caption tokens."""
    root = tmp_path_factory.mktemp("world")
    raw = write_world_dataset(root / "raw", 10, size=32, seed=5, val_fraction=0.2, num_workers=0,
                              config=WorldConfig(size=32))
    samples = RawSamples(load_raw_dataset(raw)["train"])
    rgb = toy_tokenizer("rgb", image_size=32)
    rgb.save_pretrained(root / "tok_rgb")
    text = TextTokenizer.train(corpus_from_samples(samples[i] for i in range(len(samples))), vocab_size=400)
    text.save_pretrained(root / "tok_text")
    base = default_registry()
    registry = ModalityRegistry.from_dict({
        "rgb": {**base["rgb"].to_dict(), "tokenizer": "tok_rgb", "num_tokens": rgb.num_tokens,
                "vocab_size": rgb.vocab_size, "image_size": 32},
        "caption": {**base["caption"].to_dict(), "tokenizer": "tok_text", "vocab_size": text.vocab_size},
    })
    encoders, info = build_encoders(registry, ["rgb", "caption"], root)
    pretokenize(raw, root / "tokens", encoders, info, registry, batch_size=10)
    return root / "tokens"


def unigram_entropy(rows: list[list[int]]) -> float:
    """Entropy (nats) of the empirical token distribution of ``rows``."""
    counts = np.bincount(np.concatenate([np.asarray(r) for r in rows if r]))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_tiny_model_overfits_world_samples(world_tokens, tmp_path):
    dsd, _ = load_token_dataset(world_tokens)
    train_split = dsd["train"]
    assert len(train_split) == 8
    entropy = {m: unigram_entropy(train_split[m]) for m in ("rgb", "caption")}
    assert min(entropy.values()) > 0.5  # there is something to learn
    cfg = tiny_config(
        world_tokens,
        tmp_path / "run",
        data={"val_split": "train"},  # score the memorised samples themselves, with fixed masks
        model={"overrides": {"dim": 64, "enc_depth": 1, "dec_depth": 1, "num_heads": 4}},
        masking={"train": "configs/masking/eval_fixed.yaml", "input_budget": 24, "target_budget": 24},
        optim={"lr": 4e-3, "min_lr": 1e-3, "warmup_steps": 5, "weight_decay": 0.0},
        batch_size=8,
        steps=150,
        log_every=10,
    )
    result = train(cfg)
    first = float((tmp_path / "run" / "metrics.csv").read_text().splitlines()[1].split(",")[2])
    for m in ("rgb", "caption"):
        assert result.val[f"val_loss_{m}"] < 0.1 * entropy[m], (m, result.val, entropy)
    assert result.train_loss < 0.1 * first
