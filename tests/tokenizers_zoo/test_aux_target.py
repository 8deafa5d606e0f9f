"""An image tokenizer's auxiliary target (``loss.aux``): a training-only head that decodes e.g. the
scene's semseg from the quantised latents, so the codes must carry it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fourm.errors import FourmError
from fourm.testing.tokenizers import toy_config
from tokenizers_zoo.image.tokenizer import ImageTokenizer, build_image_tokenizer
from tokenizers_zoo.image.trainer import sample_batch, setup_training, train_image_tokenizer, train_step

AUX = ("loss.aux.modality=semseg", "loss.aux.num_classes=4", "loss.aux.width=8")


def toy(*overrides: str):
    return toy_config("rgb", "train.batch_size=4", "quantizer.kmeans_init=false", *AUX, *overrides)


def scenes(n: int = 6, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """rgb images of flat 8 x 8 blocks whose semseg is readable from them: class = red channel's quarter."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (n, size // 8, size // 8, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    return rgb, (rgb[..., 0] // 64).astype(np.uint8)


def test_aux_config_is_validated():
    with pytest.raises(FourmError, match="num_classes must be >= 2"):
        toy_config("rgb", "loss.aux.modality=semseg")
    with pytest.raises(FourmError, match="needs architecture 'conv'"):
        toy_config("rgb", "architecture=vit", *AUX)
    with pytest.raises(FourmError, match="weight must be >= 0"):
        toy(*AUX, "loss.aux.weight=-1")


def test_aux_loss_is_the_heads_cross_entropy_and_reaches_the_encoder():
    torch.manual_seed(0)
    fixed_codes = ("quantizer.use_ema=false", "quantizer.dead_code_steps=0")  # the loss call changes no code
    tok = build_image_tokenizer(toy("loss.recon_weight=0", "loss.quantizer_weight=0", "loss.aux.weight=2", *fixed_codes))
    rgb, seg = scenes()
    images, target = tok.preprocess(rgb), tok.aux_targets(seg)
    tok.train()
    total, logs = tok.loss({"rgb": images, "semseg": target}, step=0)
    with torch.no_grad():
        tok.eval()
        want = F.cross_entropy(tok.aux_head(tok.quantize(images).z_q).float(), target)
    assert logs["aux"] == pytest.approx(float(want), rel=1e-4)
    assert float(total.detach()) == pytest.approx(2 * float(want), rel=1e-4)  # the only term left
    total.backward()
    grad = tok.encoder.parameters().__next__().grad  # straight through the quantiser to the encoder
    assert grad is not None and float(grad.abs().sum()) > 0


def test_training_without_the_aux_target_is_refused_in_one_line():
    tok = build_image_tokenizer(toy())
    tok.train()
    with pytest.raises(FourmError, match="auxiliary 'semseg' target"):
        tok.loss(tok.preprocess(scenes()[0]), step=0)
    tok.eval()  # evaluation needs no aux target
    _, logs = tok.loss(tok.preprocess(scenes()[0]), step=0)
    assert "aux" not in logs


def test_aux_targets_check_class_range():
    tok = build_image_tokenizer(toy())
    with pytest.raises(FourmError, match="class id 7 out of range"):
        tok.aux_targets(np.full((1, 32, 32), 7, np.uint8))
    plain = build_image_tokenizer(toy_config("rgb"))
    with pytest.raises(FourmError, match="no auxiliary target"):
        plain.aux_targets(np.zeros((1, 32, 32), np.uint8))


def test_sample_batch_flips_the_aux_target_with_its_image():
    cfg = toy("train.batch_size=32")
    setup = setup_training(cfg, scenes()[0])
    rgb, seg = scenes()
    batch = sample_batch(setup.tokenizer, rgb, cfg.train, np.random.default_rng(1), torch.Generator().manual_seed(1), seg)
    red = ((batch["rgb"][:, 0] + 1) * 127.5).round().long()  # back to uint8 red values
    assert torch.equal(batch["semseg"], red // 64)  # the target still matches its (possibly flipped) image
    flipped = [not torch.equal(red[i], torch.from_numpy(rgb[j, ..., 0]).long())
               for i, j in enumerate(np.random.default_rng(1).integers(0, len(rgb), 32))]  # fmt: skip
    assert 0 < sum(flipped) < 32  # some samples were flipped, some not


def test_train_step_and_training_learn_the_aux_target(tmp_path):
    cfg = toy("train.lr=0.003", "train.warmup_steps=1", "train.eval_every=1000", "train.eval_samples=4")
    rgb, seg = scenes(8)
    samples = [{"rgb": r, "semseg": s} for r, s in zip(rgb, seg)]
    result = train_image_tokenizer(cfg, samples, samples, tmp_path, steps=120, progress=False)
    assert result["steps"] == 120
    tok = ImageTokenizer.from_pretrained(tmp_path / "last")  # the head is saved and loaded with its weights
    images, target = tok.preprocess(rgb), tok.aux_targets(seg)
    with torch.no_grad():
        acc = float((tok.aux_head(tok.quantize(images).z_q).argmax(1) == target).float().mean())
    assert acc > 0.6  # chance is about 0.28 over 4 classes (0.75 after 120 steps)
    setup = setup_training(cfg, rgb)
    loss, logs = train_step(setup, {"rgb": images[:4], "semseg": target[:4]}, step=0, grad_clip=1.0)
    assert np.isfinite(loss) and "aux" in logs
