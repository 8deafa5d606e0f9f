"""Multi-process training through ``accelerate launch`` on CPU (gloo): DDP and DeepSpeed ZeRO-2.

Slow (process start-up dominates): run with ``pytest -m slow tests/training/test_train_distributed.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from training_testing import tiny_config

from fourm.model import FourM

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = Path(__file__).with_name("distributed_probe.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(accelerate_config: str, train_yaml: Path, *probe_args: str) -> None:
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO_ROOT / accelerate_config),
        "--main_process_port", str(free_port()),
        str(PROBE), str(train_yaml), *probe_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def write_config(token_data: Path, out: Path, path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(tiny_config(token_data, out, **changes).to_dict()))
    return path


def ranks(run: Path) -> list[dict]:
    return [json.loads((run / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_ddp_two_cpu_processes_agree_and_resume_exactly(token_data, tmp_path):
    changes = dict(steps=6, checkpoint_every=3, grad_accum=2, batch_size=2, eval_every=3)
    straight = write_config(token_data, tmp_path / "straight", tmp_path / "straight.yaml", **changes)
    launch("configs/accelerate/ddp_cpu.yaml", straight)
    a, b = ranks(tmp_path / "straight")
    assert a["world"] == b["world"] == 2 and a["step"] == b["step"] == 6
    assert a["digest"] == b["digest"]  # gradients were all-reduced: both ranks hold the same weights
    ckpt = tmp_path / "straight" / "checkpoints" / "step_00000006"
    assert (ckpt / "rng_rank0.pt").is_file() and (ckpt / "rng_rank1.pt").is_file()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["num_processes"] == 2 and state["samples_seen"] == 6 * 2 * 2 * 2
    assert (tmp_path / "straight" / "val.csv").read_text().count("\n") == 3  # header + steps 3, 6
    FourM.from_pretrained(tmp_path / "straight" / "model")

    split = write_config(token_data, tmp_path / "split", tmp_path / "split.yaml", **changes)
    launch("configs/accelerate/ddp_cpu.yaml", split, "3")
    assert ranks(tmp_path / "split")[0]["step"] == 3
    launch("configs/accelerate/ddp_cpu.yaml", split)
    c, d = ranks(tmp_path / "split")
    assert c["step"] == d["step"] == 6 and c["digest"] == d["digest"] == a["digest"]  # exact resume under DDP


@pytest.mark.slow
def test_deepspeed_zero2_two_cpu_processes(token_data, tmp_path):
    pytest.importorskip("deepspeed")
    config = write_config(token_data, tmp_path / "run", tmp_path / "run.yaml", steps=4, checkpoint_every=2, grad_accum=2,
                          batch_size=2, eval_every=2)
    launch("configs/accelerate/deepspeed_zero2.yaml", config)
    a, b = ranks(tmp_path / "run")
    assert a["world"] == b["world"] == 2 and a["step"] == b["step"] == 4 and a["digest"] == b["digest"]
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000004"
    assert (ckpt / "deepspeed").is_dir() and not (ckpt / "optimizer.pt").exists()  # ZeRO partitions instead
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 5 and all("nan" not in r for r in rows)
    model = FourM.from_pretrained(tmp_path / "run" / "model")
    from distributed_probe import weights_digest

    assert weights_digest(model) == a["digest"]
