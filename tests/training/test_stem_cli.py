"""``fourm-stem pretrain``: a trained FourM gets a pretrained conv_image stem from a raw dataset's
images and class maps; the written model loads, starts where the old one was, and the report holds the
held-out accuracy; outputs it did not write are refused, bad datasets are one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from test_stem_pretrain import MODS, _striped_scenes
from training_testing import PIX, save_trained_like

from fourm.cli.stem import main
from fourm.data.raw_dataset import write_raw_dataset
from fourm.model import FourM
from fourm.testing.interrupt import kill_after_save

ARCH = {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2}


def _raw(path, n: int, seed: int, size: int = 8):
    rgb, labels = _striped_scenes(n, seed)
    if size != 8:
        rgb = rgb.repeat_interleave(size // 8, 1).repeat_interleave(size // 8, 2)
        labels = labels.repeat_interleave(size // 8, 1).repeat_interleave(size // 8, 2)
    samples = [{"id": f"s{i}", "rgb": rgb[i].numpy(), "semseg": labels[i].numpy().astype("uint8")} for i in range(n)]
    return write_raw_dataset(path, {"train": samples[: n - 8], "val": samples[n - 8 :]}, size, ("id", "rgb", "semseg"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stem")
    return {
        "model": save_trained_like(MODS, False, ARCH, root / "model"),
        "raw": _raw(root / "raw", 72, 0),
        "raw16": _raw(root / "raw16", 24, 0, size=16),
    }


def _run(inputs, out, *extra):
    return main(["pretrain", "--model", str(inputs["model"]), "--data", str(inputs["raw"]), "--out", str(out),
                 "--steps", "60", "--batch-size", "16", "--lr", "1e-2", *extra])  # fmt: skip


def test_pretrain_writes_a_model_that_starts_where_the_old_one_was(inputs, tmp_path, capsys):
    out = tmp_path / "stem"
    assert _run(inputs, out) == 0
    report = json.loads((out / "stem_pretrain.json").read_text())
    assert report["classes"] == 3 and report["train_scenes"] == 64 and report["val_scenes"] == 8
    assert report["modality"] == PIX and report["loss_last100"] < report["loss_first"]
    assert 0.0 <= report["object_class_acc_val"] <= 1.0
    old, new = FourM.from_pretrained(inputs["model"]), FourM.from_pretrained(out)
    assert new.config.patch_stem == "conv_image"
    mod = torch.full((1, 16), list(MODS).index(PIX))
    pos, valid = torch.arange(16)[None], torch.ones(1, 16, dtype=torch.bool)
    patches = torch.randint(0, 256, (1, 16, 12), dtype=torch.uint8)
    tokens = torch.zeros(1, 16, dtype=torch.long)
    with torch.no_grad():
        torch.testing.assert_close(
            old.encode(tokens, mod, pos, valid, patches), new.encode(tokens, mod, pos, valid, patches), rtol=1e-5, atol=1e-6
        )
    assert "object class accuracy" in capsys.readouterr().out
    assert _run(inputs, out) == 0  # its own output: a rerun replaces it


def test_foreign_out_is_refused_and_kept(inputs, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert _run(inputs, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--overwrite" in err[0]
    assert (out / "notes.txt").read_text() == "keep me"


def test_an_interrupted_run_resumes_and_a_changed_one_is_refused(inputs, tmp_path, capsys, monkeypatch):
    """Killed after its step-40 save, the same command resumes from <out>.partial and ends as one run
    straight; other settings over that leftover are refused in one line (--overwrite starts over)."""
    import fourm.training.stem_pretrain as sp

    straight = tmp_path / "straight"
    assert _run(inputs, straight) == 0
    out = tmp_path / "stem"
    save = kill_after_save(monkeypatch, sp, "save_loop_state", lambda path, loop, *_: loop.step == 40)
    assert _run(inputs, out, "--save-every", "20") == 130  # Ctrl-C
    monkeypatch.setattr(sp, "save_loop_state", save)
    partial = tmp_path / "stem.partial"
    assert (partial / "state.pt").exists() and not out.exists()
    capsys.readouterr()
    assert _run(inputs, out, "--lr", "5e-3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted run" in err[0] and "config" in err[0] and "--overwrite" in err[0], err
    assert (partial / "state.pt").exists()  # kept
    assert _run(inputs, out) == 0
    assert not partial.exists()
    a = json.loads((straight / "stem_pretrain.json").read_text())
    b = json.loads((out / "stem_pretrain.json").read_text())
    assert a["losses_every_100"] == b["losses_every_100"] and a["loss_last100"] == b["loss_last100"]
    assert a["object_class_acc_val"] == b["object_class_acc_val"]
    for x, y in zip(FourM.from_pretrained(straight).state_dict().values(),
                    FourM.from_pretrained(out).state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    ("extra", "data", "expected"),
    [
        (["--labels-key", "depth"], "raw", "no 'depth' column"),
        (["--modality", "rgb"], "raw", "--modality rgb is not a pixel-patch modality"),
        ([], "raw16", "16x16; the model's patch stem reads 8x8"),
    ],
)
def test_bad_requests_are_one_line_errors(inputs, tmp_path, capsys, extra, data, expected):
    args = ["pretrain", "--model", str(inputs["model"]), "--data", str(inputs[data]), "--out", str(tmp_path / "o"),
            "--steps", "2", *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "o").exists()
