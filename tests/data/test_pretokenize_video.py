"""Pre-tokenization of world clips with configs/modalities/extra/video.yaml (the joint image-video tokenizer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourm.cli.data import main as data_main
from fourm.data.pretokenize import build_encoders, pretokenize
from fourm.data.token_dataset import load_token_dataset
from fourm.data.video_dataset import load_video_clips
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry
from fourm.testing.bundles import extra_modality_yaml, toy_text_tokenizer
from tests.codecs.test_codecs_video import FRAMES, SIZE, toy_video_tokenizer

LENGTH = 3 * (SIZE // 8) ** 2  # 5 frames: frame 0 + 2 groups of 2 frames, 16 tokens each


def video_yaml(path, tokenizer: str, **fields) -> str:
    """configs/modalities/extra/video.yaml shrunk to the toy tokenizer, written to ``path``."""
    toy = {"vocab_size": 64, "num_tokens": LENGTH, "image_size": SIZE, "position_grid": [3, SIZE // 8, SIZE // 8]}
    return extra_modality_yaml("video", path, tokenizer=tokenizer, **{**toy, **fields})


def world_clips(out, frames: int) -> str:
    argv = ["world-video", "--out", str(out), "--num", "6", "--frames", str(frames), "--size", str(SIZE),
            "--val-fraction", "0.34", "--workers", "0", "--seed", "3"]  # fmt: skip
    assert data_main(argv) == 0
    return str(out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretok_video")
    raw = world_clips(root / "raw", FRAMES)
    tok = toy_video_tokenizer(seed=1)
    tok.save_pretrained(root / "tok_video")
    toy_text_tokenizer().save_pretrained(root / "text")
    return root, raw, tok


def test_cli_writes_the_tokenizers_clip_tokens_and_the_caption(setup, tmp_path, capsys):
    root, raw, tok = setup
    argv = ["tokenize", "--data", raw, "--out", str(tmp_path / "t"), "--modalities", "caption,video",
            "--tokenizer-root", str(root), "--tokenizer", f"caption={root / 'text'}", "--precision", "fp32",
            "--add-modality", video_yaml(tmp_path / "video.yaml", "tok_video")]  # fmt: skip
    assert data_main(argv) == 0, capsys.readouterr().err
    dsd, info = load_token_dataset(tmp_path / "t")
    assert info.modalities["video"].kind == "vector" and info.modalities["video"].length == LENGTH
    assert info.modalities["video"].vocab_size == 64
    for split, n in (("train", 4), ("val", 2)):
        ids = np.array(dsd[split]["video"])
        clips = load_video_clips(raw, split)
        with torch.no_grad():
            want = tok.encode(tok.preprocess(clips)).numpy()
        assert ids.shape == (n, LENGTH) and np.array_equal(ids, want)
        captions = dsd[split]["caption"]
        assert len(captions) == n and all(len(c) > 3 for c in captions)


def test_wrong_clips_and_sizes_fail_in_one_line(setup, tmp_path):
    root, _, _ = setup
    short = world_clips(tmp_path / "short", 3)  # 3-frame clips for a 5-frame tokenizer
    registry = ModalityRegistry.from_files([video_yaml(tmp_path / "video.yaml", "tok_video")])
    encoders, info = build_encoders(registry, ["video"], root, precision="fp32")
    with pytest.raises(FourmError) as err:
        pretokenize(short, tmp_path / "t", encoders, info, registry)
    assert "expected clips of shape (5, 32, 32, 3), got 3 frames" in str(err.value) and "\n" not in str(
        err.value
    )
    (tmp_path / "v2").mkdir()
    wrong = ModalityRegistry.from_files(
        [video_yaml(tmp_path / "v2" / "video.yaml", "tok_video", num_tokens=64, position_grid=[1, 8, 8])]
    )
    with pytest.raises(FourmError) as err:
        build_encoders(wrong, ["video"], root)
    assert f"gives {LENGTH} tokens" in str(err.value) and "declares 64" in str(err.value)
    assert "\n" not in str(err.value)
