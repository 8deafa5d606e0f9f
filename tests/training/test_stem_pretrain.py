"""Pretraining a conv_image stem's CNN path on segmentation (fourm.training.stem_pretrain): the patch
layout and class shares against numpy references, the withheld-patch draws, that the CNN learns a
pattern-defined class and only the CNN path moves, the object score against a loop, and that a
trained FourM takes the pretrained CNN while computing what it did."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from training_testing import PIX, save_trained_like

from fourm.core.patches import patchify
from fourm.errors import FourmError
from fourm.model import FourM, ModalityConfig
from fourm.model.patch_stem import ImageConvStem
from fourm.testing.interrupt import kill_after_save
from fourm.training.finetune import replace_patch_stem
from fourm.training.stem_pretrain import (
    StemPretrainConfig,
    class_shares,
    image_patches,
    object_shape_accuracy,
    pretrain_image_stem,
    random_given,
    with_pretrained_stem,
)


def test_image_patches_match_patchify_and_the_models_scaling():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    got = image_patches(torch.from_numpy(images), 4)
    want = np.stack([patchify(im, 4) for im in images]).astype(np.float32) * (2.0 / 255.0) - 1.0
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)
    with pytest.raises(FourmError, match="square"):
        image_patches(torch.zeros(1, 16, 12, 3, dtype=torch.uint8), 4)


def test_class_shares_count_pixels_per_patch():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = 2  # top-left patch: 1 of 4 pixels class 2
    labels[0, 2:, 2:] = 1  # bottom-right patch: all class 1
    shares = class_shares(labels, 2, 3)
    assert shares.shape == (1, 4, 3)
    torch.testing.assert_close(shares[0, 0], torch.tensor([0.75, 0.0, 0.25]))
    torch.testing.assert_close(shares[0, 3], torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(shares.sum(-1), torch.ones(1, 4))
    with pytest.raises(FourmError, match=r"class map values must be in \[0, 3\)"):
        class_shares(labels + 1, 2, 3)


def test_random_given_keeps_a_uniform_share_of_patches():
    g = torch.Generator().manual_seed(0)
    here = random_given(4000, 64, 0.25, g)
    kept = here.sum(1)
    assert int(kept.min()) == 16 and int(kept.max()) == 64  # ceil(0.25 * 64) .. 64, both reached
    assert abs(kept.float().mean().item() - 40.0) < 0.6  # uniform over 16..64
    assert abs(here.float().mean(0).std().item()) < 0.03  # no position favoured
    again = random_given(4000, 64, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(here, again)


def _striped_scenes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8 x 8 scenes of 2 x 2 patches: one 4 x 4 grey block per scene, filled with horizontal stripes
    (class 1) or vertical ones (class 2): the class is in the pattern, not the colour."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.zeros(n, 8, 8, 3, dtype=torch.uint8)
    labels = torch.zeros(n, 8, 8, dtype=torch.long)
    for i in range(n):
        y, x = (int(v) for v in torch.randint(0, 3, (2,), generator=g) * 2)
        cls = int(torch.randint(1, 3, (1,), generator=g))
        stripes = (torch.arange(4)[:, None] % 2 == 0) if cls == 1 else (torch.arange(4)[None, :] % 2 == 0)
        block = torch.where(stripes.expand(4, 4), 220, 40).to(torch.uint8)
        rgb[i, y : y + 4, x : x + 4] = block[..., None]
        labels[i, y : y + 4, x : x + 4] = cls
    return rgb, labels


def test_pretraining_learns_a_pattern_class_and_moves_only_the_cnn_path():
    torch.manual_seed(0)
    stem = ImageConvStem(patch_dim=12, dim=16, channels=3, width=8, length=16)
    proj, linear = stem.proj.weight.clone(), stem.linear.weight.clone()
    conv = stem.convs[0].weight.clone()
    rgb, labels = _striped_scenes(256, 0)
    rgb_val, labels_val = _striped_scenes(128, 1)
    head, losses = pretrain_image_stem(
        stem, rgb, labels, 3, StemPretrainConfig(steps=300, batch_size=32, lr=1e-2, warmup_steps=20), progress=False
    )
    assert len(losses) == 300 and np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    assert object_shape_accuracy(stem, head, rgb_val, labels_val) >= 0.95  # chance: 0.5
    assert torch.equal(stem.proj.weight, proj) and torch.equal(stem.linear.weight, linear)
    assert not torch.equal(stem.convs[0].weight, conv)


def test_pretraining_is_deterministic_and_checks_its_inputs():
    rgb, labels = _striped_scenes(32, 0)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        stem = ImageConvStem(patch_dim=12, dim=16, channels=3, width=4, length=16)
        pretrain_image_stem(stem, rgb, labels, 3, StemPretrainConfig(steps=5, batch_size=4), progress=False)
        weights.append(stem.convs[-1].weight)
    assert torch.equal(*weights)
    with pytest.raises(FourmError, match="do not match"):
        pretrain_image_stem(stem, rgb[:, :4], labels, 3, progress=False)
    with pytest.raises(FourmError, match="min_given"):
        StemPretrainConfig(min_given=0.0)
    with pytest.raises(FourmError, match="background_weight"):
        StemPretrainConfig(background_weight=-1.0)


def test_an_interrupted_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Killed after its step-4 save, run again with the same state file: the same weights and losses as
    8 steps straight (the state holds stem, head, optimizer and the sampler's RNG)."""
    import fourm.training.stem_pretrain as sp

    rgb, labels = _striped_scenes(32, 0)
    config = StemPretrainConfig(steps=8, batch_size=4, warmup_steps=2)

    def fresh():
        torch.manual_seed(0)
        return ImageConvStem(patch_dim=12, dim=16, channels=3, width=4, length=16)

    straight = fresh()
    head, losses = pretrain_image_stem(straight, rgb, labels, 3, config, progress=False)
    save = kill_after_save(monkeypatch, sp, "save_loop_state", lambda path, loop, *_: loop.step == 4)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        pretrain_image_stem(fresh(), rgb, labels, 3, config, progress=False, state_path=state, save_every=2)
    monkeypatch.setattr(sp, "save_loop_state", save)
    resumed = fresh()
    head2, losses2 = pretrain_image_stem(resumed, rgb, labels, 3, config, progress=False, state_path=state, save_every=2)
    assert losses2 == losses and len(losses) == 8
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(head.weight, head2.weight)
    with pytest.raises(FourmError, match="past the 3 steps"):  # a finished 8-step state, 3 asked for
        pretrain_image_stem(fresh(), rgb, labels, 3, StemPretrainConfig(steps=3, batch_size=4), progress=False,
                            state_path=state)  # fmt: skip
    state.write_bytes(b"not a state")
    with pytest.raises(FourmError, match="cannot resume from"):
        pretrain_image_stem(fresh(), rgb, labels, 3, config, progress=False, state_path=state)


def test_background_alone_weighs_background_weight():
    """With background_weight 0, scenes of background alone give a zero loss and leave the stem as it was."""
    torch.manual_seed(0)
    stem = ImageConvStem(patch_dim=12, dim=16, channels=3, width=4, length=16)
    before = [p.clone() for p in stem.convs.parameters()]
    rgb = torch.randint(0, 256, (8, 8, 8, 3), dtype=torch.uint8)
    config = StemPretrainConfig(steps=3, batch_size=4, background_weight=0.0, weight_decay=0.0)
    _, losses = pretrain_image_stem(stem, rgb, torch.zeros(8, 8, 8, dtype=torch.long), 3, config, progress=False)
    assert losses == [0.0, 0.0, 0.0]
    assert all(torch.equal(a, b) for a, b in zip(before, stem.convs.parameters(), strict=True))


def test_object_shape_accuracy_matches_a_loop():
    torch.manual_seed(0)
    stem = ImageConvStem(patch_dim=12, dim=16, channels=3, width=4, length=16)
    head = torch.nn.Linear(stem.norm.normalized_shape[0], 4)
    rgb = torch.randint(0, 256, (6, 8, 8, 3), dtype=torch.uint8)
    labels = torch.randint(0, 4, (6, 8, 8))
    labels[0] = 0
    labels[0, :3, :3] = 2  # a scene with one object
    got = object_shape_accuracy(stem, head, rgb, labels, batch=4)
    right = total = 0
    with torch.no_grad():
        for i in range(6):
            patches = image_patches(rgb[i : i + 1], 2)
            b, n = torch.zeros(16, dtype=torch.long), torch.arange(16)
            probs = head(stem.cell_features(patches, n[None], b, n)).softmax(-1)  # (16, 4)
            for c in range(1, 4):
                share = class_shares(labels[i : i + 1], 2, 4)[0, :, c]
                if share.sum() == 0:
                    continue
                score = ((share / share.sum())[:, None] * probs[:, 1:]).sum(0)
                right += int(int(score.argmax()) + 1 == c)
                total += 1
    assert math.isclose(got, right / total)


MODS = {
    "rgb": ModalityConfig("image", 32, 16),
    "caption": ModalityConfig("sequence", 64, 12),
    PIX: ModalityConfig("image", 256, 16, target=False, patch_dim=12),
}


def test_a_trained_model_takes_the_pretrained_cnn_and_starts_where_it_was(tmp_path):
    old = FourM.from_pretrained(save_trained_like(MODS, False, {"dim": 32, "enc_depth": 1, "dec_depth": 1,
                                                               "num_heads": 2}, tmp_path / "model"))
    torch.manual_seed(5)
    stem = ImageConvStem(12, 32, 3, old.config.patch_stem_width, 16)
    model = with_pretrained_stem(old, {PIX: stem})
    new = model.embeddings.patch_embed[PIX]
    assert model.config.patch_stem == "conv_image"
    for a, b in zip(new.convs.parameters(), stem.convs.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(new.norm.weight, stem.norm.weight)
    assert torch.equal(new.linear.weight, old.embeddings.patch_embed[PIX].weight) and not new.proj.weight.any()
    tokens = torch.randint(0, 16, (2, 16))
    mod = torch.full((2, 16), list(MODS).index(PIX))
    pos, valid = torch.arange(16).expand(2, 16), torch.ones(2, 16, dtype=torch.bool)
    patches = torch.randint(0, 256, (2, 16, 12), dtype=torch.uint8)
    with torch.no_grad():
        a, b = old.encode(tokens, mod, pos, valid, patches), model.encode(tokens, mod, pos, valid, patches)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # a second pretrained CNN replaces the first in a conv_image model
    again = with_pretrained_stem(model, {PIX: ImageConvStem(12, 32, 3, old.config.patch_stem_width, 16)})
    assert not torch.equal(again.embeddings.patch_embed[PIX].convs[0].weight, stem.convs[0].weight)


def test_pretrained_stem_mismatches_are_one_line_errors(tmp_path):
    old = FourM.from_pretrained(save_trained_like(MODS, False, {"dim": 32, "enc_depth": 1, "dec_depth": 1,
                                                               "num_heads": 2}, tmp_path / "model"))
    with pytest.raises(FourmError, match="patch_stem_width or patch size differ"):
        with_pretrained_stem(old, {PIX: ImageConvStem(12, 32, 3, old.config.patch_stem_width + 1, 16)})
    with pytest.raises(FourmError, match="no pixel-patch modality 'rgb'"):
        with_pretrained_stem(old, {"rgb": ImageConvStem(12, 32, 3, old.config.patch_stem_width, 16)})
    conv, _ = replace_patch_stem(old, "conv")
    with pytest.raises(FourmError, match="not 'conv'"):
        with_pretrained_stem(conv, {PIX: ImageConvStem(12, 32, 3, old.config.patch_stem_width, 16)})
