"""Image-tokenizer training loop, evaluation metrics and the ``fourm-tokenizer`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fourm.cli.tokenizer import main
from fourm.errors import FourmError
from fourm.testing.interrupt import kill_after_save
from fourm.testing.tokenizers import toy_config
from tokenizers_zoo.image import ImageTokenizer
from tokenizers_zoo.image.metrics import ReconstructionMetrics, psnr
from tokenizers_zoo.image.trainer import stack_modality, train_image_tokenizer


def synthetic_samples(n: int, size: int = 32, seed: int = 0) -> list[dict]:
    """Raw samples with one coloured rectangle on a grey background (+ matching semseg)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rgb = np.full((size, size, 3), 90, np.uint8)
        semseg = np.zeros((size, size), np.uint8)
        y, x = rng.integers(0, size // 2, 2)
        h, w = rng.integers(size // 4, size // 2, 2)
        rgb[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        semseg[y : y + h, x : x + w] = 1 + i % 3
        out.append({"id": f"s{i}", "rgb": rgb, "semseg": semseg})
    return out


def test_psnr_matches_formula():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.full((2, 3, 4, 4), 0.1)
    b[1] = 0.5
    torch.testing.assert_close(psnr(b, a), torch.tensor([20.0, 10 * np.log10(1 / 0.25)]).float())


def test_reconstruction_metrics_against_hand_counts():
    m = ReconstructionMetrics("semseg", num_classes=3)
    target = torch.tensor([[[0, 0], [1, 2]]])
    pred = torch.tensor([[[0, 1], [1, 1]]])
    m.update(pred, target)
    out = m.compute()
    assert out["pixel_accuracy"] == pytest.approx(0.5)
    # IoU: class 0 = 1/2, class 1 = 1/3, class 2 = 0/1
    assert out["miou"] == pytest.approx((0.5 + 1 / 3 + 0.0) / 3)

    e = ReconstructionMetrics("edges")
    e.update(torch.tensor([[1.0, 1.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
    out = e.compute()
    assert (out["precision"], out["recall"], out["f1"], out["accuracy"]) == pytest.approx(
        (0.5, 0.5, 0.5, 0.5)
    )

    r = ReconstructionMetrics("depth")
    r.update(torch.full((1, 1, 2, 2), 0.0), torch.full((1, 1, 2, 2), -1.0))  # raw 0.5 vs 0.0
    assert r.compute()["psnr"] == pytest.approx(10 * np.log10(1 / 0.25), rel=1e-5)
    assert r.compute()["mae"] == pytest.approx(0.5)


def test_stack_modality_reads_lists_and_reports_missing_keys():
    samples = synthetic_samples(3)
    arr = stack_modality(samples, "rgb", progress=False)
    assert arr.shape == (3, 32, 32, 3) and arr.dtype == np.uint8
    from fourm.errors import FourmError

    with pytest.raises(FourmError, match="no 'depth'"):
        stack_modality(samples, "depth", progress=False)


@pytest.mark.parametrize("modality", ["rgb", "semseg"])
def test_training_lowers_the_loss_and_writes_outputs(modality, tmp_path):
    samples = synthetic_samples(24)
    cfg = toy_config(
        modality,
        "train.batch_size=8",
        "train.eval_every=15",
        "train.eval_samples=8",
        "train.warmup_steps=2",
        "train.lr=0.003",
        "quantizer.kmeans_init=false",
    )
    result = train_image_tokenizer(cfg, samples[:16], samples[16:], tmp_path, steps=30, progress=False)
    losses = result["losses"]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert [row["step"] for row in result["history"]] == [15, 30]

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["steps"] == 30 and saved["final"]["step"] == 30
    primary = "psnr" if modality == "rgb" else "pixel_accuracy"
    assert saved["best"][primary] == max(row[primary] for row in saved["history"])
    assert 0 < saved["final"]["usage"] <= 100

    tok = ImageTokenizer.from_pretrained(tmp_path / "tokenizer")
    images = tok.preprocess([s[modality] for s in samples[16:]])
    assert tok.encode(images).shape == (8, tok.num_tokens)
    assert (tmp_path / "last" / "model.safetensors").is_file()
    with Image.open(tmp_path / "reconstructions.png") as png:
        assert png.mode == "RGB" and png.width > png.height > 0


def test_cli_reports_bad_config_as_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modality: rgbb\n")
    assert main(["train", "--config", str(bad), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "rgbb" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--tokenizer", str(tmp_path / "missing"), "--data", str(tmp_path)]) == 2
    assert "tokenizer directory not found" in capsys.readouterr().err


def test_cli_train_and_eval_on_a_raw_dataset(tmp_path, capsys):
    raw_dataset = pytest.importorskip("fourm.data.raw_dataset")
    samples = synthetic_samples(20)
    data_dir = tmp_path / "data"
    raw_dataset.write_raw_dataset(
        data_dir, {"train": samples[:16], "val": samples[16:]}, 32, ("id", "rgb", "semseg")
    )
    out = tmp_path / "out"
    cfg_path = tmp_path / "toy.yaml"
    cfg_path.write_text(
        json.dumps(toy_config("rgb", "train.eval_every=100", "train.eval_samples=4").to_dict())
    )
    assert (
        main(
            [
                "train",
                "--config",
                str(cfg_path),
                "--data",
                str(data_dir),
                "--out",
                str(out),
                "--steps",
                "3",
                "train.batch_size=4",
            ]
        )
        == 0
    )
    assert (out / "tokenizer" / "config.json").is_file() and (out / "reconstructions.png").is_file()
    capsys.readouterr()
    assert main(["eval", "--tokenizer", str(out / "tokenizer"), "--data", str(data_dir), "--num", "4"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"psnr", "usage", "perplexity", "dead_codes"} <= set(printed)
    # --init: train on from those weights (here with an auxiliary semseg target), codebook kept
    more = tmp_path / "more"
    args = ["train", "--config", str(cfg_path), "--data", str(data_dir), "--out", str(more), "--steps", "1",
            "--init", str(out / "last"), "train.batch_size=4", "train.lr=1e-9", "loss.aux.modality=semseg",
            "loss.aux.num_classes=8", "loss.aux.width=8"]  # fmt: skip
    assert main(args) == 0
    start, after = ImageTokenizer.from_pretrained(out / "last"), ImageTokenizer.from_pretrained(more / "last")
    images = after.preprocess(np.stack([s["rgb"] for s in samples[:4]]))
    same = (start.encode(images) == after.encode(images)).float().mean()
    assert same > 0.8  # one step at lr 1e-9 (and one EMA codebook update): nearly the same codes
    assert after.aux_head is not None
    bad = [a if a != str(out / "last") else str(out / "missing") for a in args]
    bad[bad.index(str(more))] = str(tmp_path / "other")
    assert main(bad) == 2 and "not found" in capsys.readouterr().err


def test_train_text_cli(tmp_path, capsys):
    from fourm.cli.tokenizer import main
    from fourm.data.raw_dataset import write_world_dataset
    from fourm.data.world import WorldConfig
    from tokenizers_zoo.text import TextTokenizer

    raw = write_world_dataset(tmp_path / "raw", 20, size=32, config=WorldConfig(size=32), num_workers=0)
    assert main(["train-text", "--data", str(raw), "--out", str(tmp_path / "text"), "--vocab-size", "700"]) == 0
    tok = TextTokenizer.from_pretrained(tmp_path / "text")
    assert tok.vocab_size <= 700
    ids, n = tok.encode(["a small red circle"], max_length=16)
    assert tok.decode(ids)[0] == "a small red circle" and tok.unk_id not in ids[0, : n[0]].tolist()
    assert main(["train-text", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "t2")]) == 2
    assert "error:" in capsys.readouterr().err


def test_an_interrupted_training_resumes_exactly_and_another_run_is_refused(tmp_path, monkeypatch):
    """Killed after its step-8 save and called again: the same losses, evaluations and weights as 12
    steps straight (k-means init and dead-code restarts draw from the global RNG, restored too); the
    resume state goes when the run ends; a leftover of another config is refused unless start_over."""
    import tokenizers_zoo.image.trainer as trainer

    samples = synthetic_samples(24)
    cfg = toy_config("rgb", "train.batch_size=4", "train.eval_every=6", "train.eval_samples=8",
                     "train.save_every=4", "train.warmup_steps=2", "quantizer.dead_code_steps=3")  # fmt: skip
    straight = train_image_tokenizer(cfg, samples[:16], samples[16:], tmp_path / "a", steps=12, progress=False)
    save = kill_after_save(monkeypatch, trainer, "save_resume", lambda out, setup, step, *_: step == 8)
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        train_image_tokenizer(cfg, samples[:16], samples[16:], out, steps=12, progress=False)
    monkeypatch.setattr(trainer, "save_resume", save)
    assert (out / "resume" / "state.pt").is_file() and not (out / "last").exists()
    assert (out / "tokenizer").is_dir()  # the step-6 best: tokenizer/ alone does not say the run is done
    other = toy_config("rgb", "train.batch_size=4", "train.eval_every=6", "train.eval_samples=8",
                       "train.save_every=4", "train.warmup_steps=2", "quantizer.dead_code_steps=3", "train.lr=0.01")  # fmt: skip
    with pytest.raises(FourmError, match=r"interrupted run .*changed: config.*--overwrite"):
        train_image_tokenizer(other, samples[:16], samples[16:], out, steps=12, progress=False)
    with pytest.raises(FourmError, match=r"changed: data"):
        train_image_tokenizer(cfg, samples[:15], samples[16:], out, steps=12, progress=False)
    saving_more_often = toy_config("rgb", "train.batch_size=4", "train.eval_every=6", "train.eval_samples=8",
                                   "train.save_every=1", "train.warmup_steps=2", "quantizer.dead_code_steps=3")  # fmt: skip
    resumed = train_image_tokenizer(saving_more_often, samples[:16], samples[16:], out, steps=12, progress=False)
    assert resumed["losses"] == straight["losses"] and len(straight["losses"]) == 12
    drop = ("minutes",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed["history"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in straight["history"]
    ]
    a, b = ImageTokenizer.from_pretrained(tmp_path / "a" / "last"), ImageTokenizer.from_pretrained(out / "last")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert not (out / "resume").exists()
    started_over = train_image_tokenizer(other, samples[:16], samples[16:], out, steps=3, progress=False, start_over=True)
    assert len(started_over["losses"]) == 3
