"""Joint image-video tokenizer: token layout, causality over frame groups, persistence, two-stage training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fourm.errors import FourmError
from fourm.resources import CONFIG_ROOT
from fourm.testing.interrupt import kill_after_save
from tokenizers_zoo.video import VideoTokenizer, VideoTokenizerConfig

SIZE, PATCH = 32, 8
S = (SIZE // PATCH) ** 2  # tokens per frame group


def toy_config(**changes) -> VideoTokenizerConfig:
    data = dict(image_size=SIZE, max_frames=8, patch=PATCH, temporal_patch=2, width=32, depth=2, num_heads=2,
                quantizer=dict(kind="vq", dim=8, codebook_size=64, code_dim=4, l2_normalize=True))  # fmt: skip
    data.update(changes)
    return VideoTokenizerConfig.from_dict(data)


@pytest.fixture(scope="module")
def tok() -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(toy_config()).eval()


def clip(b: int = 2, t: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_shipped_config_builds():
    cfg = VideoTokenizerConfig.from_file(CONFIG_ROOT / "tokenizers" / "video.yaml")
    model = VideoTokenizer(cfg)
    assert model.tokens_for(1) == 64 and model.num_tokens == 64 + 4 * 64 and model.vocab_size == 1024


@pytest.mark.parametrize("frames, groups", [(1, 1), (2, 2), (3, 2), (5, 3), (8, 5)])
def test_token_counts(tok, frames, groups):
    tokens = tok.encode(clip(t=frames))
    assert tokens.shape == (2, groups * S) and tokens.dtype == torch.long
    assert (
        tok.grid_size(frames) == (groups, SIZE // PATCH, SIZE // PATCH)
        and tok.tokens_for(frames) == groups * S
    )
    assert int(tokens.max()) < tok.vocab_size
    assert tok.decode(tokens, frames).shape == (2, frames, 3, SIZE, SIZE)
    assert tok.decode(tokens).shape == (2, 1 + (groups - 1) * 2, 3, SIZE, SIZE)


def test_an_image_is_the_first_frame_group(tok):
    video = clip()
    tokens = tok.encode(video)
    image_tokens = tok.encode(video[:, 0])  # (B, 3, H, W): a one-frame clip
    assert image_tokens.shape == (2, S) and torch.equal(image_tokens, tokens[:, :S])
    image = tok.decode(image_tokens)
    assert image.shape == (2, 1, 3, SIZE, SIZE)
    assert float((image[:, 0] - tok.decode(tokens)[:, 0]).abs().max()) <= 1e-6


@pytest.mark.parametrize("changed", range(1, 8))
def test_encoder_is_causal_over_frame_groups(tok, changed):
    video = clip()
    other = video.clone()
    other[:, changed] = -video[:, changed]
    group = 1 + (changed - 1) // 2  # the frame group holding frame ``changed``
    with torch.no_grad():
        z, z_other = tok.encoder(tok.pad(video)), tok.encoder(tok.pad(other))
    assert torch.equal(
        z[:, :group], z_other[:, :group]
    )  # exactly: earlier groups never see frame ``changed``
    assert not torch.equal(z[:, group], z_other[:, group])
    tokens, tokens_other = tok.encode(video), tok.encode(other)
    assert torch.equal(tokens[:, : group * S], tokens_other[:, : group * S])


def test_decoder_is_causal_over_frame_groups(tok):
    tokens = tok.encode(clip())
    other = tokens.clone()
    other[:, 3 * S :] = (other[:, 3 * S :] + 1) % tok.vocab_size  # change groups 3 and 4 (frames 5-8)
    a, b = tok.decode(tokens), tok.decode(other)
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5:], b[:, 5:])


def test_padding_repeats_the_last_frame(tok):
    video = clip(t=4)
    padded = tok.pad(video)
    assert padded.shape[1] == 5 and torch.equal(padded[:, 4], video[:, 3])
    assert torch.equal(tok.encode(video), tok.encode(padded))


def test_every_parameter_gets_a_gradient():
    model = VideoTokenizer(toy_config()).train()
    loss, logs = model.loss(clip(t=5))
    loss.backward()
    assert torch.isfinite(loss) and {"recon", "quantizer", "q_perplexity"} <= set(logs)
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []


def test_preprocess_postprocess_round_trip(tok):
    frames = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    x = tok.preprocess(frames)
    assert x.shape == (3, 3, SIZE, SIZE) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(tok.postprocess(x), frames)
    assert tok.preprocess(frames[0]).shape == (1, 3, SIZE, SIZE)
    assert tok.preprocess(frames[None]).shape == (1, 3, 3, SIZE, SIZE)


def test_bad_inputs(tok):
    with pytest.raises(FourmError, match="clip of 9 frames"):
        tok.encode(clip(t=9))
    with pytest.raises(FourmError, match=r"expects a float clip \(B, T, 3, 32, 32\)"):
        tok.encode(torch.zeros(2, 3, 16, 16))
    with pytest.raises(FourmError, match="expected tokens"):
        tok.decode(torch.zeros(1, S + 1, dtype=torch.long))
    with pytest.raises(FourmError, match="cannot decode to 8 frames"):
        tok.decode(torch.zeros(1, 2 * S, dtype=torch.long), 8)
    with pytest.raises(FourmError, match="uint8 frames"):
        tok.preprocess(np.zeros((SIZE, SIZE, 3), dtype=np.float32))
    with pytest.raises(FourmError, match="divisible by patch"):
        toy_config(patch=5)
    with pytest.raises(FourmError, match="max_frames"):
        toy_config(max_frames=0)


def test_save_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path / "tok")
    loaded = VideoTokenizer.from_pretrained(tmp_path / "tok")
    video = clip(seed=1)
    tokens = tok.encode(video)
    assert torch.equal(loaded.encode(video), tokens)
    assert torch.equal(loaded.decode(tokens, 8), tok.decode(tokens, 8))
    assert loaded.cfg.to_dict() == tok.cfg.to_dict()
    (tmp_path / "tok" / "model.safetensors").unlink()
    with pytest.raises(FourmError, match="missing model.safetensors"):
        VideoTokenizer.from_pretrained(tmp_path / "tok")


def test_two_stage_training_writes_everything(tmp_path):
    from fourm.data.world import WorldConfig
    from fourm.data.world.video import render_clip
    from tokenizers_zoo.video.trainer import train_video_tokenizer

    world = WorldConfig(size=SIZE)
    clips = np.stack([render_clip(i, frames=8, config=world)["video"] for i in range(6)])
    stages = dict(
        image_stage=dict(steps=3, image_batch=4), joint_stage=dict(steps=2, image_batch=2, video_batch=2)
    )
    cfg = toy_config(train=dict(**stages, warmup_steps=1, eval_clips=2, precision="fp32"))
    result = train_video_tokenizer(cfg, clips[:4], clips[4:], tmp_path / "out", log=lambda _: None)
    assert result["image_stage"]["steps"] == 3 and result["joint_stage"]["steps"] == 2
    ev = result["joint_stage"]["eval"]
    assert len(ev["psnr_per_frame"]) == 8 and ev["tokens_per_clip"] == 5 * S and ev["tokens_per_image"] == S
    assert {"image_psnr", "flicker", "image_flicker", "gt_frame_diff", "recon_frame_diff"} <= set(ev)
    out = tmp_path / "out"
    assert json.loads((out / "metrics.json").read_text())["joint_stage"]["steps"] == 2
    VideoTokenizer.from_pretrained(out / "tokenizer")
    VideoTokenizer.from_pretrained(out / "image_stage")
    with Image.open(out / "reconstruction.gif") as gif:
        assert gif.n_frames == 8


def test_an_interrupted_training_resumes_exactly(tmp_path, monkeypatch):
    """Killed after its joint stage's step-2 save and run again: the weights and figures of a run
    straight through (the finished image stage is not trained again); the resume state then goes."""
    import tokenizers_zoo.video.trainer as trainer
    from fourm.data.world import WorldConfig
    from fourm.data.world.video import render_clip
    from tokenizers_zoo.video.trainer import train_video_tokenizer

    clips = np.stack([render_clip(i, frames=4, config=WorldConfig(size=SIZE))["video"] for i in range(6)])
    stages = dict(image_stage=dict(steps=3, image_batch=4), joint_stage=dict(steps=4, image_batch=2, video_batch=2))
    cfg = toy_config(train=dict(**stages, warmup_steps=1, eval_clips=2, precision="fp32", save_every=2))
    straight = train_video_tokenizer(cfg, clips[:4], clips[4:], tmp_path / "a", log=lambda _: None)
    joint_step_2 = lambda path, loop, *_: path.name == "joint.pt" and loop.step == 2  # noqa: E731
    save = kill_after_save(monkeypatch, trainer, "save_loop_state", joint_step_2)
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        train_video_tokenizer(cfg, clips[:4], clips[4:], out, log=lambda _: None)
    monkeypatch.setattr(trainer, "save_loop_state", save)
    lines = []
    resumed = train_video_tokenizer(cfg, clips[:4], clips[4:], out, log=lines.append)
    assert "[image] done before: resumed at its end" in lines and "[joint] resuming at step 2" in lines
    for stage in ("image_stage", "joint_stage"):
        assert resumed[stage]["eval"] == straight[stage]["eval"] and resumed[stage]["last"] == straight[stage]["last"]
    a, b = VideoTokenizer.from_pretrained(tmp_path / "a" / "tokenizer"), VideoTokenizer.from_pretrained(out / "tokenizer")
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    assert not (out / "resume").exists()


def test_train_video_cli(tmp_path, capsys):
    from fourm.cli.tokenizer import main as tokenizer_main
    from fourm.data.video_dataset import write_world_video_dataset
    from fourm.data.world import WorldConfig

    data = write_world_video_dataset(tmp_path / "clips", 5, frames=3, size=SIZE, num_workers=0,
                                     val_fraction=0.2, config=WorldConfig(size=SIZE))  # fmt: skip
    cfg = tmp_path / "video.yaml"
    cfg.write_text(json.dumps(toy_config().to_dict()))
    overrides = ["train.image_stage.steps=1", "train.joint_stage.steps=1", "train.joint_stage.video_batch=1",
                 "train.joint_stage.image_batch=1", "train.precision=fp32"]  # fmt: skip
    argv = [
        "train-video",
        "--config",
        str(cfg),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        *overrides,
    ]
    assert tokenizer_main(argv) == 0
    assert '"psnr"' in capsys.readouterr().out
    assert VideoTokenizer.from_pretrained(tmp_path / "out" / "tokenizer").cfg.train.joint_stage.steps == 1
    bad = ["train-video", "--config", str(cfg), "--data", str(data), "--out", str(tmp_path / "o2"), "patch=5"]
    assert tokenizer_main(bad) == 2
    assert "divisible by patch" in capsys.readouterr().err
