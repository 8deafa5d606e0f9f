"""``python train.py``: config + overrides, resume, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from training_testing import tiny_config

from fourm.cli.train import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_yaml(token_data, tmp_path, **changes):
    cfg = tiny_config(token_data, tmp_path / "unused", **changes).to_dict()
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_trains_with_overrides_and_resumes(token_data, tmp_path, capsys):
    config = write_yaml(token_data, tmp_path)
    out = tmp_path / "run"
    assert main(["--config", str(config), "steps=4", "optim.lr=1e-3", "--out", str(out), "--stop-at", "2"]) == 0
    assert "stopped at step 2" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())  # the resolved config
    assert saved["steps"] == 4 and saved["optim"]["lr"] == 1e-3 and saved["output_dir"] == str(out)
    assert main(["--config", str(config), "steps=4", "optim.lr=1e-3", "--out", str(out), "--resume", "auto"]) == 0
    assert f"done: 4 steps, model saved to {out / 'model'}" in capsys.readouterr().out
    assert (out / "model" / "model.safetensors").is_file()


def test_cli_errors_are_one_line(token_data, tmp_path, capsys):
    config = write_yaml(token_data, tmp_path)
    cases = [
        (["optim.lr=oops"], f"{config}: invalid value for 'optim.lr': 'oops' (expected a number)"),
        (["data.datasets=[{path: /no/such/tokens}]"], "token dataset not found: /no/such/tokens"),
        (["--resume", str(tmp_path / "missing")], "checkpoint not found"),
    ]
    for extra, message in cases:
        assert main(["--config", str(config), "--out", str(tmp_path / "run"), *extra]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(err) == 1 and message in err[0], err


def test_top_level_train_py_dispatches(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "--config", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: config file not found: {tmp_path / 'nope.yaml'}"


def test_resume_of_a_run_saved_before_a_field_existed(token_data, tmp_path, capsys):
    """A config.json written before a field was added to fourm ran with its default: resuming is no change;
    a real change is still refused, named."""
    config = write_yaml(token_data, tmp_path)
    out = tmp_path / "run"
    assert main(["--config", str(config), "steps=4", "--out", str(out), "--stop-at", "2"]) == 0
    saved = json.loads((out / "config.json").read_text())
    del saved["compile"], saved["optim"]["eps"]  # as an older fourm wrote it (both at their defaults)
    (out / "config.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert main(["--config", str(config), "steps=4", "optim.eps=1e-6", "--out", str(out), "--resume", "auto"]) == 2
    err = capsys.readouterr().err
    assert "optim.eps (1e-08 -> 1e-06)" in err and "compile" not in err
    assert main(["--config", str(config), "steps=4", "--out", str(out), "--resume", "auto"]) == 0
    assert f"done: 4 steps, model saved to {out / 'model'}" in capsys.readouterr().out
