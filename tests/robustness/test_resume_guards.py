"""Resumes never mix inputs or settings: tokenize after the data / tokenizer changed, train.py with
overrides; a final model/ that does not load is saved again; train.py refuses a second writer."""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest
from robustness_testing import error_line, tree_hash, write_world

import fourm.data.pretokenize as pretokenize_module
from fourm.cli.data import main as data_main
from fourm.cli.train import main as train_main
from fourm.errors import FourmError
from fourm.model import FourM
from fourm.training.config import TrainConfig
from fourm.training.loop import train
from fourm.training.synthetic import write_synthetic_tokens
from fourm.utils.atomic import host_id
from fourm.utils.outputs import lock_path


def _interrupted_tokenize(monkeypatch, argv) -> None:
    """Run ``fourm-data tokenize`` until its shards are written, then 'kill' it before assembling."""

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(pretokenize_module, "write_token_dataset", killed)
        assert data_main(argv) == 130


@pytest.fixture
def tokenize_setup(tmp_path, world_raw, text_tokenizer_dir):
    raw = tmp_path / "raw"
    shutil.copytree(world_raw, raw)
    tok = tmp_path / "tok"
    shutil.copytree(text_tokenizer_dir, tok)
    out = tmp_path / "tokens"
    argv = ["tokenize", "--data", str(raw), "--out", str(out), "--modalities", "caption", "--tokenizer",
            f"caption={tok}", "--shard-size", "4"]  # fmt: skip
    return raw, tok, out, argv


def test_tokenize_resumes_when_nothing_changed(tokenize_setup, monkeypatch, capsys):
    raw, tok, out, argv = tokenize_setup
    _interrupted_tokenize(monkeypatch, argv)
    assert (out.with_name("tokens.partial") / "manifest.json").is_file()
    capsys.readouterr()
    assert data_main(argv) == 0, capsys.readouterr().err
    assert "0 encoded, 3 resumed" in capsys.readouterr().out


def test_tokenize_resume_refused_after_the_data_changed(tokenize_setup, monkeypatch, capsys):
    raw, tok, out, argv = tokenize_setup
    _interrupted_tokenize(monkeypatch, argv)
    shutil.rmtree(raw)
    write_world(raw, seed=1)  # other scenes under the same path
    assert data_main(argv) == 2
    line = error_line(capsys)
    assert "interrupted run" in line and f"raw dataset {raw}" in line and not out.exists()


def test_tokenize_resume_refused_after_the_tokenizer_changed(tokenize_setup, world_raw, monkeypatch, capsys):
    from fourm.data.raw_dataset import RawSamples, load_raw_dataset
    from tokenizers_zoo.text import TextTokenizer, corpus_from_samples

    raw, tok, out, argv = tokenize_setup
    _interrupted_tokenize(monkeypatch, argv)
    samples = RawSamples(load_raw_dataset(world_raw)["train"])
    shutil.rmtree(tok)
    TextTokenizer.train(corpus_from_samples(samples[i] for i in range(2)), vocab_size=450).save_pretrained(tok)
    assert data_main(argv) == 2
    line = error_line(capsys)
    assert "interrupted run" in line and "tokenizer of 'caption'" in line and not out.exists()


# ------------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return write_synthetic_tokens(tmp_path_factory.mktemp("tokens") / "synthetic", num_train=16, num_val=4, seed=1)


def _cfg(tokens, out, **changes) -> TrainConfig:
    base = {
        "data": {"datasets": [{"path": str(tokens)}]},
        "model": {"preset": "tiny", "overrides": {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2}},
        "masking": {"input_budget": 16, "target_budget": 16},
        "optim": {"lr": 3e-3, "min_lr": 1e-4, "warmup_steps": 1},
        "batch_size": 4, "steps": 3, "precision": "fp32", "log_every": 1, "eval_every": 0,
        "checkpoint_every": 0, "tensorboard": False, "output_dir": str(out),
    }  # fmt: skip
    for key, value in changes.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return TrainConfig.from_dict(base)


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_final_model_that_does_not_load_is_saved_again_on_resume(tokens, tmp_path, damage):
    cfg = _cfg(tokens, tmp_path / "run")
    done = train(cfg)
    model_dir = done.final_model
    if damage == "empty":  # killed during the final save
        shutil.rmtree(model_dir)
        model_dir.mkdir()
    else:
        weights = model_dir / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    again = train(cfg, resume="auto")
    assert again.step == 3 and again.final_model == model_dir
    saved = FourM.from_pretrained(model_dir)
    assert all((saved.state_dict()[k] == v).all() for k, v in done.model.state_dict().items())


def test_resume_with_overrides_that_change_the_run_is_refused(tokens, tmp_path):
    cfg = _cfg(tokens, tmp_path / "run", steps=4)
    train(cfg, stop_at=2)
    config_file = tmp_path / "run" / "config.json"
    before = tree_hash(config_file)
    with pytest.raises(FourmError) as info:
        train(_cfg(tokens, tmp_path / "run", steps=4, seed=5, optim={"lr": 0.5}), resume="auto")
    message = str(info.value)
    assert "seed (0 -> 5)" in message and "optim.lr (0.003 -> 0.5)" in message and "\n" not in message
    assert tree_hash(config_file) == before
    # logging / checkpoint cadence may change
    assert train(_cfg(tokens, tmp_path / "run", steps=4, log_every=2), resume="auto").step == 4


def test_second_train_into_a_locked_run_is_refused(tokens, tmp_path, live_pid, dead_pid, capsys):
    out = tmp_path / "run"
    config = tmp_path / "c.json"
    config.write_text(json.dumps(_cfg(tokens, out).to_dict()))
    lock = lock_path(out)
    lock.write_text(json.dumps({"pid": live_pid, "host": host_id(), "hostname": socket.gethostname(),
                                "command": "train.py"}))  # fmt: skip
    assert train_main(["--config", str(config), "--out", str(out)]) == 2
    line = error_line(capsys)
    assert f"pid {live_pid} on {socket.gethostname()}" in line and not (out / "config.json").exists()
    lock.write_text(json.dumps({"pid": dead_pid, "host": host_id(), "command": "train.py"}))  # holder gone
    assert train_main(["--config", str(config), "--out", str(out)]) == 0, capsys.readouterr().err
    assert not lock.exists() and (out / "model" / "model.safetensors").is_file()
    assert os.path.isfile(out / ".fourm-output.json")
