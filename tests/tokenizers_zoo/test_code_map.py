"""The code map between two image tokenizers of one modality (``tokenizers_zoo.image.code_map``) and
``fourm-tokenizer code-map``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fourm.cli.tokenizer import main
from fourm.errors import FourmError
from fourm.testing.tokenizers import toy_config
from tokenizers_zoo.image.code_map import NO_CODE, CodeMap, build_code_map
from tokenizers_zoo.image.tokenizer import build_image_tokenizer


def _tokenizer(seed: int, *overrides: str):
    torch.manual_seed(seed)
    return build_image_tokenizer(toy_config("rgb", "quantizer.kmeans_init=false", *overrides)).eval()


def _images(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _permuted(tok, perm: torch.Tensor):
    """A copy of ``tok`` whose code j is ``tok``'s code perm[j] (the same tokenizer, codes renamed)."""
    new = build_image_tokenizer(tok.cfg).eval()
    new.load_state_dict(tok.state_dict())
    q = new.quantizer
    for value in list(q.buffers()) + list(q.parameters()):
        if value.dim() >= 1 and value.shape[0] == tok.vocab_size:
            value.data.copy_(value.data[perm])
    return new


def test_a_renamed_codebook_maps_back_exactly():
    old = _tokenizer(0)
    perm = torch.randperm(old.vocab_size, generator=torch.Generator().manual_seed(1))
    new = _permuted(old, perm)
    images = _images()
    assert torch.equal(perm[new.encode(new.preprocess(images))], old.encode(old.preprocess(images)))
    code_map = build_code_map(old, new, images, batch_size=3, progress=False)
    assert code_map.agreement == 1.0 and code_map.patches == 8 * 16
    used = set(new.encode(new.preprocess(images)).flatten().tolist())
    for j, i in enumerate(code_map.mapping):
        assert i == (int(perm[j]) if j in used else NO_CODE)


def test_majority_vote_and_agreement_against_a_reference():
    old, new = _tokenizer(0), _tokenizer(1)
    images = _images()
    a = old.encode(old.preprocess(images)).flatten().tolist()
    b = new.encode(new.preprocess(images)).flatten().tolist()
    code_map = build_code_map(old, new, images, progress=False)
    agree = 0
    for j in set(b):
        olds = [x for x, y in zip(a, b) if y == j]
        top = max(olds.count(x) for x in olds)
        assert olds.count(code_map.mapping[j]) == top  # the most frequent old code (ties: any of them)
        agree += top
    assert code_map.agreement == pytest.approx(agree / len(a))


def test_tokenizers_of_other_grids_are_refused():
    with pytest.raises(FourmError, match="do not cover the same patches"):
        build_code_map(_tokenizer(0), _tokenizer(0, "downsample=4", "channel_mult=[1,1,2]"), _images(), progress=False)


def test_cli_writes_the_map_and_refuses_to_overwrite(tmp_path, capsys):
    from fourm.data.raw_dataset import write_world_dataset

    data = tmp_path / "data"
    write_world_dataset(data, 8, size=32, seed=0, val_fraction=0.25, num_workers=0)
    old, new = _tokenizer(0), _tokenizer(1)
    old.save_pretrained(tmp_path / "old")
    new.save_pretrained(tmp_path / "new")
    out = tmp_path / "map.json"
    args = ["code-map", "--old", str(tmp_path / "old"), "--new", str(tmp_path / "new"), "--data", str(data), "--out", str(out)]
    assert main(args) == 0
    loaded = CodeMap.load(out)
    assert len(loaded.mapping) == new.vocab_size and loaded.old_vocab == old.vocab_size and loaded.patches == 6 * 16
    assert "new codes mapped" in capsys.readouterr().out
    before = out.read_text()
    assert main(args) != 0
    assert "already exists" in capsys.readouterr().err and out.read_text() == before
    assert main([*args[:-1], str(tmp_path / "new" / "map.json")]) != 0  # inside an input
    data_map = json.loads(before)
    assert set(data_map) == {"mapping", "old_vocab", "agreement", "patches"}
