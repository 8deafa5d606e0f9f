"""Pre-tokenization of rgb with a dynamic tokenizer (configs/modalities/extra/rgb_dynamic.yaml): a
sequence modality whose rows are the tokenizer's [pos][code] ids up to [EOS], of varying length."""

from __future__ import annotations

import pytest
import torch

from fourm.cli.data import main as data_main
from fourm.data.pretokenize import build_encoders, pretokenize
from fourm.data.raw_dataset import RawSamples, load_raw_dataset, write_world_dataset
from fourm.data.token_dataset import load_token_dataset
from fourm.data.world import WorldConfig
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry
from fourm.testing.bundles import extra_modality_yaml, toy_text_tokenizer
from fourm.testing.tokenizers import toy_tokenizer
from tests.codecs.test_codecs_dynamic import LENGTH, SIZE, VOCAB, toy_dynamic_tokenizer


def dynamic_yaml(folder, tokenizer: str, **fields) -> str:
    """configs/modalities/extra/rgb_dynamic.yaml shrunk to the toy tokenizer, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    toy = {"vocab_size": VOCAB, "max_length": LENGTH}
    return extra_modality_yaml("rgb_dynamic", folder / "rgb_dynamic.yaml", tokenizer=tokenizer, **{**toy, **fields})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretok_dynamic")
    raw = write_world_dataset(
        root / "raw", 16, size=SIZE, seed=5, val_fraction=0.25, config=WorldConfig(size=SIZE)
    )
    train = RawSamples(load_raw_dataset(raw)["train"])
    tok = toy_dynamic_tokenizer(seed=1, calibration=[train[i]["rgb"] for i in range(len(train))])
    tok.save_pretrained(root / "tok_dynamic")
    toy_tokenizer("rgb", image_size=SIZE, seed=2).save_pretrained(root / "tok_conv")
    toy_text_tokenizer().save_pretrained(root / "text")
    return root, raw, tok


def reference_rows(tok, raw, split: str) -> list[list[int]]:
    """The tokenizer's own encode (fp32) of every image of ``split``, each row up to its [EOS]."""
    samples = RawSamples(load_raw_dataset(raw)[split])
    with torch.no_grad():
        ids = tok.encode(tok.preprocess([samples[i]["rgb"] for i in range(len(samples))])).tolist()
    return [row[: row.index(2) + 1] for row in ids]


def test_rows_are_the_tokenizers_ids_up_to_eos(setup, tmp_path):
    root, raw, tok = setup
    registry = ModalityRegistry.from_files([dynamic_yaml(tmp_path, "tok_dynamic")])
    encoders, info = build_encoders(registry, ["rgb_dynamic"], root, precision="fp32")
    mod = info.modalities["rgb_dynamic"]
    assert (mod.kind, mod.vocab_size, mod.length) == ("sequence", VOCAB, LENGTH)
    assert (info.specials.pad, info.specials.sos, info.specials.eos) == (0, 1, 2)
    assert info.specials.sentinels == list(range(5, 37))
    pretokenize(raw, tmp_path / "tok", encoders, info, registry, batch_size=5, shard_size=8)
    dsd, _ = load_token_dataset(tmp_path / "tok")
    for split in ("train", "val"):
        rows = [list(r) for r in dsd[split]["rgb_dynamic"]]
        assert rows == reference_rows(tok, raw, split)
    assert len({len(r) for r in dsd["train"]["rgb_dynamic"]}) > 1  # variable lengths


def test_cli_with_a_caption_and_add_modality(setup, tmp_path, capsys):
    root, raw, tok = setup
    argv = ["tokenize", "--data", str(raw), "--out", str(tmp_path / "t"), "--modalities", "caption,rgb_dynamic",
            "--tokenizer-root", str(root), "--tokenizer", f"caption={root / 'text'}", "--precision", "fp32",
            "--add-modality", dynamic_yaml(tmp_path, "tok_dynamic")]  # fmt: skip
    assert data_main(argv) == 0, capsys.readouterr().err
    dsd, info = load_token_dataset(tmp_path / "t")
    assert info.modalities["rgb_dynamic"].kind == "sequence" and info.modalities["caption"].kind == "sequence"
    assert [list(r) for r in dsd["val"]["rgb_dynamic"]] == reference_rows(tok, raw, "val")
    assert all(len(c) > 3 for c in dsd["val"]["caption"])


def test_errors_are_one_line(setup, tmp_path):
    root, raw, _ = setup
    wrong = ModalityRegistry.from_files([dynamic_yaml(tmp_path / "a", "tok_conv")])  # a grid tokenizer
    with pytest.raises(FourmError) as err:
        build_encoders(wrong, ["rgb_dynamic"], root)
    assert "expected a dynamic image tokenizer (architecture 'dynamic'), got 'conv'" in str(err.value)
    assert "\n" not in str(err.value)
    sizes = ModalityRegistry.from_files([dynamic_yaml(tmp_path / "b", "tok_dynamic", max_length=129)])
    with pytest.raises(FourmError) as err:
        build_encoders(sizes, ["rgb_dynamic"], root)
    assert "gives rows of 33 ids" in str(err.value) and "\n" not in str(err.value)
    big = write_world_dataset(
        tmp_path / "big", 4, size=48, seed=1, val_fraction=0.25, config=WorldConfig(size=48)
    )
    registry = ModalityRegistry.from_files([dynamic_yaml(tmp_path / "c", "tok_dynamic")])
    encoders, info = build_encoders(registry, ["rgb_dynamic"], root, precision="fp32")
    with pytest.raises(FourmError) as err:
        pretokenize(big, tmp_path / "t", encoders, info, registry)
    assert "expected an image of shape (32, 32, 3)" in str(err.value) and "\n" not in str(err.value)
