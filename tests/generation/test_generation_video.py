"""A video target (configs/modalities/extra/video.yaml): MaskGIT over the clip tokens of a joint
image-video tokenizer, decoded to clips; a first frame given as the known start; generate.py output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fourm.cli.generate import main as generate_main
from fourm.codecs import SequenceCodec, VideoCodec
from fourm.errors import FourmError
from fourm.generation.pipeline import FourMPipeline
from fourm.modalities import ModalityRegistry, ModalitySpec, default_registry
from fourm.resources import CONFIG_ROOT
from fourm.testing.bundles import assert_decoded_and_seeded, toy_model, toy_text_tokenizer
from fourm.utils.config import read_mapping
from tests.codecs.test_codecs_video import FRAMES, SIZE, clips, toy_video_tokenizer

S = (SIZE // 8) ** 2
LENGTH = 3 * S  # frame 0 + 2 groups of 2 frames


def video_spec(tok) -> ModalitySpec:
    """The shipped video.yaml at the toy tokenizer's sizes."""
    spec = {**read_mapping(CONFIG_ROOT / "modalities" / "extra" / "video.yaml"),
            "num_tokens": tok.num_tokens, "vocab_size": tok.vocab_size, "image_size": SIZE,
            "position_grid": [3, SIZE // 8, SIZE // 8]}  # fmt: skip
    return ModalitySpec.from_dict(spec)


@pytest.fixture(scope="module")
def pipe() -> FourMPipeline:
    tok, text = toy_video_tokenizer(), toy_text_tokenizer()
    caption = {**default_registry()["caption"].to_dict(), "max_length": 16, "vocab_size": text.vocab_size}
    registry = ModalityRegistry([ModalitySpec.from_dict(caption), video_spec(tok)])
    model = toy_model(registry, seed=0)
    with torch.no_grad():  # peaked, seed-sensitive token distributions
        model.output_weight.mul_(20.0)
    codecs = {
        "caption": SequenceCodec("caption", text, 16),
        "video": VideoCodec("video", tok, precision="fp32"),
    }
    pipe = FourMPipeline(model, codecs, registry)
    pipe.precision = "fp32"
    return pipe


def test_caption_to_video(pipe):
    result = pipe.generate({"caption": "a red circle"}, ["video"], num_samples=2, progress=False)
    t = result.plan.targets[0]
    assert t.scheme == "maskgit"
    ids = result.tokens["video"]
    assert ids.shape == (2, LENGTH) and int(ids.min()) >= 0 and int(ids.max()) < 64
    videos = result.values["video"]
    assert len(videos) == 2 and videos[0].shape == (FRAMES, SIZE, SIZE, 3) and videos[0].dtype == np.uint8
    assert_decoded_and_seeded(pipe, {"caption": "a red circle"}, "video", result, num_samples=2)


def test_first_frame_is_kept(pipe):
    frame0 = clips(1)[0, 0]
    codec = pipe.codecs["video"]
    first = codec.encode([frame0], prefix=True)  # (1, S): the image tokens of the frame
    result = pipe.generate({"caption": "a red circle"}, ["video"], num_samples=2, partial={"video": frame0},
                           progress=False)  # fmt: skip
    ids = result.tokens["video"]
    assert torch.equal(ids[:, :S], first.expand(2, S))
    free = pipe.generate({"caption": "a red circle"}, ["video"], num_samples=2, progress=False)
    assert not torch.equal(free.tokens["video"][:, :S], ids[:, :S])  # the prefix changed the result
    # the decoded first frame is the tokenizer's picture of the given frame (frame 0 decodes on its own)
    tok = codec.tokenizer
    want = tok.postprocess(tok.decode(first))[0, 0]
    np.testing.assert_array_equal(result.values["video"][0][0], want)


def test_video_condition_of_wrong_size_fails_in_one_line(pipe):
    with pytest.raises(
        FourmError, match=r"modality 'video': expected clips of shape \(5, 32, 32, 3\), got 3 frames"
    ) as e:
        pipe.generate({"video": np.zeros((3, SIZE, SIZE, 3), np.uint8)}, ["caption"], progress=False)
    assert "\n" not in str(e.value)


def test_generate_cli_writes_gif_and_strip(pipe, tmp_path):
    bundle = pipe.save_pretrained(tmp_path / "bundle")
    loaded = FourMPipeline.from_pretrained(bundle)
    assert isinstance(loaded.codecs["video"], VideoCodec) and loaded.codecs["video"].length == LENGTH
    Image.fromarray(clips(1)[0, 0]).save(tmp_path / "frame0.png")
    out = tmp_path / "out"
    rc = generate_main(["--model", str(bundle), "--cond", "caption=a red circle", "--target", "video",
                        "--prefix", f"video={tmp_path / 'frame0.png'}", "--steps", "video=4",
                        "--num-samples", "2", "--out", str(out), "--no-progress", "--precision", "fp32"])  # fmt: skip
    assert rc == 0
    for i in range(2):
        folder = out / f"sample_{i:03d}"
        with Image.open(folder / "video.gif") as gif:
            assert gif.size == (2 * SIZE, 2 * SIZE) and gif.format == "GIF"
        strip = np.asarray(Image.open(folder / "video_strip.png"))
        assert strip.shape == (SIZE, FRAMES * (SIZE + 2) - 2, 3)
    assert (out / "overview.png").is_file()
    assert (
        "video" not in (out / "sequences.json").read_text().split('"samples"')[1]
    )  # no clip as JSON numbers


def test_generate_cli_prompts_with_long_captions(pipe, tmp_path):
    bundle = pipe.save_pretrained(tmp_path / "bundle")
    long = "a red circle moves quickly to the right and " * 8  # longer than a file name may be
    (tmp_path / "p.jsonl").write_text(
        json.dumps({"caption": long}) + "\n" + json.dumps({"caption": "a red circle"}) + "\n"
    )
    out = tmp_path / "out"
    rc = generate_main(["--model", str(bundle), "--prompts", str(tmp_path / "p.jsonl"), "--target", "video",
                        "--steps", "video=2", "--out", str(out), "--no-progress", "--precision", "fp32"])  # fmt: skip
    assert rc == 0
    for p in ("p000_s00", "p001_s00"):
        assert (out / "samples" / p / "video.gif").is_file() and (
            out / "samples" / p / "video_strip.png"
        ).is_file()
