"""Training the perceptual loss's network on one's own images (``tokenizers_zoo.image.perceptual``,
``fourm-tokenizer train-perceptual``): it learns the classes, and its file feeds ``loss.perceptual_weights``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourm.cli.tokenizer import main
from fourm.errors import FourmError
from fourm.testing.interrupt import kill_after_save
from tokenizers_zoo.image.losses import PerceptualLoss
from tokenizers_zoo.image.perceptual import save_perceptual_net, train_perceptual_net


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey images with one 12 x 12 square, red (class 1) or blue (class 2), at a random place."""
    rng = np.random.default_rng(seed)
    rgb = np.full((n, 32, 32, 3), 128, np.uint8)
    labels = np.zeros((n, 32, 32), np.uint8)
    for i in range(n):
        y, x, c = rng.integers(0, 20), rng.integers(0, 20), rng.integers(1, 3)
        rgb[i, y : y + 12, x : x + 12] = (220, 30, 30) if c == 1 else (30, 30, 220)
        labels[i, y : y + 12, x : x + 12] = c
    return rgb, labels


def test_the_net_learns_the_classes_and_its_file_feeds_the_perceptual_loss(tmp_path):
    (rgb, labels), (vr, vl) = squares(64, 0), squares(16, 1)
    net, report = train_perceptual_net(rgb, labels, vr, vl, 3, minutes=5, max_steps=60, batch_size=8, progress=False)
    assert report.steps == 60
    assert report.object_acc > 0.8  # chance over the two object classes: 0.5
    path = tmp_path / "net.safetensors"
    save_perceptual_net(net, path)
    loss = PerceptualLoss(path)
    x = torch.from_numpy(vr[:2]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    swapped = x.flip(1)  # red squares turned blue: another class
    assert float(loss(swapped, x)) > 0.01


def test_bad_labels_are_refused():
    rgb, labels = squares(4, 0)
    with pytest.raises(FourmError, match="class id 2 out of range"):
        train_perceptual_net(rgb, labels, rgb, labels, 2, max_steps=1, progress=False)
    with pytest.raises(FourmError, match="num_classes >= 2"):
        train_perceptual_net(rgb, labels * 0, rgb, labels * 0, 1, max_steps=1, progress=False)
    with pytest.raises(FourmError, match="as many label maps as images"):
        train_perceptual_net(rgb, labels[:3], rgb, labels, 3, max_steps=1, progress=False)


def test_cli_trains_on_world_data_and_keeps_existing_files(tmp_path, capsys):
    from fourm.data.raw_dataset import write_world_dataset

    data = tmp_path / "data"
    write_world_dataset(data, 8, size=32, seed=0, val_fraction=0.25, num_workers=0)
    out = tmp_path / "net.safetensors"
    args = ["train-perceptual", "--data", str(data), "--out", str(out), "--steps", "2", "--num-classes", "8"]
    assert main(args) == 0 and out.is_file()
    assert not (tmp_path / "net.safetensors.partial").exists()  # the resume state goes when it is done
    assert "held-out pixel accuracy" in capsys.readouterr().out
    before = out.read_bytes()
    assert main(args) == 2 and "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*args[:4], str(tmp_path / "net.bin"), *args[5:]]) == 2
    assert "must be a .safetensors file" in capsys.readouterr().err


def test_an_interrupted_training_resumes_to_the_same_net(tmp_path, monkeypatch):
    """Killed after its step-4 save and run again on the same state file: the weights of 8 steps straight."""
    import tokenizers_zoo.image.perceptual as perceptual

    (rgb, labels), (vr, vl) = squares(32, 0), squares(8, 1)
    run = dict(minutes=5, max_steps=8, batch_size=4, progress=False)
    straight, _ = train_perceptual_net(rgb, labels, vr, vl, 3, **run)
    save = kill_after_save(monkeypatch, perceptual, "save_loop_state", lambda path, loop, *_: loop.step == 4)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_perceptual_net(rgb, labels, vr, vl, 3, **run, state_path=state, save_every=2)
    monkeypatch.setattr(perceptual, "save_loop_state", save)
    resumed, report = train_perceptual_net(rgb, labels, vr, vl, 3, **run, state_path=state, save_every=2)
    assert report.steps == 8
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
