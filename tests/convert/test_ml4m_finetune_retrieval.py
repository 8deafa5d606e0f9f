"""A converted ml-4m model fine-tuned and used for retrieval, as fourm's own models are:
``train.py --init-from <converted bundle> --add-modality ...`` on the 4M-7 / 4M-21 parity fixtures
(tests/fixtures/ml4m/fm_*, written by ml-4m's code), and ``fourm-retrieve`` index / query / eval with
a converted bundle that has its tokenizers (ml4m_bundle_fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ml4m_bundle_fixtures import convert, write_sources
from ml4m_parity_fixtures import unpack
from PIL import Image

from fourm.cli.retrieve import main as retrieve_main
from fourm.cli.train import main as train_main
from fourm.convert.ml4m import convert_ml4m
from fourm.data.masking.spans import SequenceSpecialTokens
from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset
from fourm.generation.pipeline import FourMPipeline
from fourm.model import FourM
from fourm.training.config import TrainConfig

ADDED = "extra_vec"
# ml-4m's WordPiece layout: [PAD] 0, [UNK] 1, [SOS] 2, [EOS] 3, then [S_0] .. [S_99]
ML4M_SPECIALS = SequenceSpecialTokens(pad=0, sos=2, eos=3, sentinels=list(range(5, 105)))


def _finetune_tokens(model: FourM, out: Path, images: int = 3) -> Path:
    """Random token data for a converted model: its pixel patches, ``images`` image-token modalities,
    captions (ml-4m's specials) and the added 4-token vector modality."""
    rng = np.random.default_rng(0)
    mods: dict[str, ModalityTokens] = {}
    for name, m in model.config.modalities.items():
        if m.patch_dim:
            mods[name] = ModalityTokens(kind="image", vocab_size=256, length=m.length, patch_dim=m.patch_dim, input_only=True)
        elif name == "caption":
            mods[name] = ModalityTokens(kind="sequence", vocab_size=m.vocab_size, length=m.length)
        elif m.kind == "image" and sum(1 for k in mods if k.startswith("tok_")) < images:
            mods[name] = ModalityTokens(kind="image", vocab_size=m.vocab_size, length=m.length)
    mods[ADDED] = ModalityTokens(kind="vector", vocab_size=32, length=4)

    def sample() -> dict:
        row = {}
        for name, m in mods.items():
            if m.kind == "sequence":
                row[name] = np.array([*rng.integers(200, m.vocab_size, rng.integers(3, 12)), ML4M_SPECIALS.eos])
            elif m.patch_dim:
                row[name] = rng.integers(0, 256, m.length * m.patch_dim).astype(np.uint8)
            else:
                row[name] = rng.integers(0, m.vocab_size, m.length)
        return row

    splits = {"train": [sample() for _ in range(8)], "val": [sample() for _ in range(4)]}
    return write_token_dataset(out, splits, TokenDatasetInfo(modalities=mods, specials=ML4M_SPECIALS))


@pytest.mark.parametrize("fixture", ["fm_4m7", "fm_4m21"])
def test_finetune_a_converted_bundle_with_an_added_modality(tmp_path, capsys, fixture):
    bundle = tmp_path / "bundle"
    convert_ml4m(unpack(fixture, tmp_path / "src"), bundle)
    base = FourM.from_pretrained(bundle / "model")
    tokens = _finetune_tokens(base, tmp_path / "tokens")
    yaml = tmp_path / f"{ADDED}.yaml"
    yaml.write_text(f"name: {ADDED}\nkind: vector\nvocab_size: 32\nnum_tokens: 4\n")
    config = tmp_path / "train.json"
    TrainConfig.from_dict({
        "data": {"datasets": [{"path": str(tokens)}]}, "model": {"preset": "tiny"},
        "masking": {"input_budget": 16, "target_budget": 16}, "optim": {"lr": 3e-3, "min_lr": 1e-4, "warmup_steps": 1},
        "batch_size": 2, "steps": 2, "precision": "fp32", "log_every": 1, "eval_every": 0, "checkpoint_every": 0,
        "tensorboard": False, "output_dir": str(tmp_path / "run"),
    }).save_json(config)
    # --init-from: the bundle directory itself (its model/ is found)
    code = train_main(["--config", str(config), "--init-from", str(bundle), "--add-modality", str(yaml)])
    assert code == 0, capsys.readouterr().err
    tuned = FourM.from_pretrained(tmp_path / "run" / "model")
    assert list(tuned.config.modalities) == [*base.config.modalities, ADDED]
    # the converted model's ml-4m options carry over: only the modality list differs
    strip = {"modalities"}
    assert {k: v for k, v in tuned.config.to_dict().items() if k not in strip} == \
        {k: v for k, v in base.config.to_dict().items() if k not in strip}
    trained = {k for k, v in base.state_dict().items() if not torch.equal(v, tuned.state_dict()[k][: v.shape[0]])}
    assert trained  # the old weights train too (no frozen stage asked for)


@pytest.fixture(scope="module")
def retrieval_setup(tmp_path_factory):
    """A converted bundle with its tokenizers and a token dataset of (tok_rgb@32, caption) pairs made
    with its own codecs."""
    root = tmp_path_factory.mktemp("ml4m_retrieval")
    bundle = convert(write_sources(root / "src"), root / "bundle")
    pipe = FourMPipeline.from_pretrained(bundle, device="cpu")
    text = pipe.codecs["caption"].tokenizer
    rng = np.random.default_rng(0)
    captions = ["a dog", "a cat on a mat", "a dog on a mat", "a cat"]

    def sample(i: int) -> dict:
        ids = pipe.tokenize("caption", [captions[i % 4]])[0].tolist()
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        return {"tok_rgb@32": pipe.tokenize("tok_rgb@32", [image])[0].numpy(),
                "caption": [t for t in ids if t != text.pad_id]}

    mods = {"tok_rgb@32": ModalityTokens(kind="image", vocab_size=50, length=16),
            "caption": ModalityTokens(kind="sequence", vocab_size=40, length=12)}
    specials = SequenceSpecialTokens(pad=text.pad_id, sos=text.sos_id, eos=text.eos_id, sentinels=text.sentinel_ids)
    tokens = write_token_dataset(root / "tokens", {"train": [sample(i) for i in range(12)],
                                                   "val": [sample(i) for i in range(8)]},
                                 TokenDatasetInfo(modalities=mods, specials=specials))
    return bundle, tokens


def test_retrieve_with_a_converted_bundle(retrieval_setup, tmp_path, capsys):
    bundle, tokens = retrieval_setup
    model = ["--model", str(bundle)]
    align = ["--align-samples", "8", "--align-dim", "4", "--center-split", "train"]
    index = tmp_path / "idx"
    assert retrieve_main(["index", "--data", str(tokens), "--key-modality", "tok_rgb@32", "--out", str(index),
                          *model, *align]) == 0, capsys.readouterr().err
    assert "indexed 8 items (tok_rgb@32, pooled, dim 4)" in capsys.readouterr().out
    # a caption query through ml-4m's text tokenizer, an image query through the converted VQ-VAE
    assert retrieve_main(["query", "--index", str(index), "--cond", "caption=a dog", "--top-k", "3", *model]) == 0
    assert "#3" in capsys.readouterr().out
    image = tmp_path / "q.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    assert retrieve_main(["query", "--index", str(index), "--cond", f"tok_rgb@32={image}", "--top-k", "2", *model]) == 0
    report = tmp_path / "eval.json"
    assert retrieve_main(["eval", "--data", str(tokens), "--query", "caption", "--key", "tok_rgb@32", "--json",
                          str(report), *model, *align]) == 0
    assert "caption -> tok_rgb@32" in capsys.readouterr().out
    assert report.is_file() and json.loads(report.read_text())
    assert retrieve_main(["eval", "--data", str(tokens), "--query", "caption", "--key", "tok_rgb@32", "--no-align",
                          *model]) == 0


def test_predicted_retrieval_needs_a_vector_modality(retrieval_setup, tmp_path, capsys):
    """ml-4m models have no vector modality (their global embeddings are image-token modalities):
    ``--method predicted`` is refused in one line."""
    bundle, tokens = retrieval_setup
    args = ["index", "--data", str(tokens), "--key-modality", "tok_rgb@32", "--out", str(tmp_path / "i"),
            "--model", str(bundle), "--method", "predicted"]
    assert retrieve_main(args) == 2
    err = capsys.readouterr().err
    assert "no vector modality" in err and err.strip().count("\n") == 0
    assert retrieve_main([*args, "--vector-modality", "tok_dinov2_global"]) == 2
    err = capsys.readouterr().err
    assert "not a vector one" in err and err.strip().count("\n") == 0
