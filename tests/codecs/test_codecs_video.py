"""VideoCodec (fourm.codecs.video): clips <-> the ids of the joint image-video tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fourm.codecs import VideoCodec
from fourm.codecs.video import is_video_tokenizer_dir, read_frames
from fourm.errors import FourmError
from fourm.utils.video import save_gif
from tokenizers_zoo.video import VideoTokenizer, VideoTokenizerConfig

SIZE, FRAMES = 32, 5  # 1 + 2 groups of 2 frames -> 3 * 16 = 48 tokens
S = (SIZE // 8) ** 2


def toy_video_tokenizer(seed: int = 0, size: int = SIZE, frames: int = FRAMES) -> VideoTokenizer:
    """A random joint tokenizer (width 32, depth 1, 64 codes), seeded."""
    cfg = VideoTokenizerConfig.from_dict(
        dict(image_size=size, max_frames=frames, patch=8, temporal_patch=2, width=32, depth=1, num_heads=2,
             quantizer=dict(kind="vq", dim=8, codebook_size=64, code_dim=4, l2_normalize=True))
    )  # fmt: skip
    torch.manual_seed(seed)
    return VideoTokenizer(cfg).eval()


def clips(n: int = 2, frames: int = FRAMES, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, frames, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tok() -> VideoTokenizer:
    return toy_video_tokenizer()


@pytest.fixture(scope="module")
def codec(tok) -> VideoCodec:
    return VideoCodec("video", tok, precision="fp32")


def test_sizes(codec):
    assert (codec.length, codec.vocab_size, codec.frames, codec.image_size) == (3 * S, 64, FRAMES, SIZE)


def test_round_trip_matches_tokenizer(codec, tok):
    x = clips()
    ids = codec.encode(list(x))
    expected = tok.encode(tok.preprocess(x))
    assert ids.shape == (2, 3 * S) and ids.dtype == torch.long
    assert torch.equal(ids, expected)
    out = codec.decode(ids)
    assert len(out) == 2 and out[0].shape == (FRAMES, SIZE, SIZE, 3) and out[0].dtype == np.uint8
    np.testing.assert_array_equal(np.stack(out), tok.postprocess(tok.decode(expected, num_frames=FRAMES)))
    assert torch.equal(codec.encode(x), ids)  # a numpy batch (B, T, H, W, 3) is split into clips


def test_prefix_is_start_of_clip_ids(codec):
    x = clips(1)
    full = codec.encode([x[0]])
    first = codec.encode([x[0, 0]], prefix=True)  # an image: frame 0's tokens
    assert first.shape == (1, S) and torch.equal(first, full[:, :S])
    three = codec.encode([x[0, :4]], prefix=True)  # 4 frames: group 0, group 1 (frames 1-2), frame 3 dropped
    assert three.shape == (1, 2 * S) and torch.equal(three, full[:, : 2 * S])


def test_wrong_clips_fail_in_one_line(codec):
    with pytest.raises(FourmError, match=r"expected clips of shape \(5, 32, 32, 3\), got 4 frames") as e:
        codec.encode([clips(1, frames=4)[0]])
    assert "\n" not in str(e.value)
    with pytest.raises(FourmError, match=r"got uint8 \(5, 16, 16, 3\)") as e:
        codec.encode([np.zeros((FRAMES, 16, 16, 3), np.uint8)])
    assert "\n" not in str(e.value)
    with pytest.raises(FourmError, match=r"got uint8 \(6, 32, 32, 3\)"):
        codec.normalize(np.zeros((6, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(FourmError, match="expected 48 tokens per sample, got 47"):
        codec.decode(torch.zeros(1, 47, dtype=torch.long))
    with pytest.raises(FourmError, match="token id 64 out of range"):
        codec.decode(torch.full((1, 48), 64))


def test_paths_and_detection(codec, tok, tmp_path):
    x = clips(1)[0]
    save_gif(x, tmp_path / "clip.gif")
    frames = read_frames(tmp_path / "clip.gif")
    assert frames.shape[1:] == (SIZE, SIZE, 3) and 1 <= frames.shape[0] <= FRAMES
    Image.fromarray(x[0]).save(tmp_path / "first.png")
    assert torch.equal(
        codec.encode([str(tmp_path / "first.png")], prefix=True), codec.encode([x[0]], prefix=True)
    )
    tok.save_pretrained(tmp_path / "tok")
    assert is_video_tokenizer_dir(tmp_path / "tok") and not is_video_tokenizer_dir(tmp_path)
