"""A non-editable install (the wheel pip builds from the checkout) works from another directory: the
configs and the default bundle ship inside the package (fourm.resources)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-compile", "-q",
           "--target", str(target), str(REPO_ROOT)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    if proc.returncode != 0:
        pytest.fail(f"pip install failed: {proc.stderr[-2000:]}")
    return target


def _run(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_installed_package_holds_configs_and_the_default_bundle(installed, tmp_path):
    code = (
        "import json, fourm, fourm.resources as r;"
        "print(json.dumps([fourm.__file__, str(r.CONFIG_ROOT), str(r.DEFAULT_BUNDLE),"
        " str(r.resolve_path('configs/train/world_default.yaml'))]))"
    )
    proc = _run(installed, tmp_path, "-c", code)
    assert proc.returncode == 0, proc.stderr
    module, configs, bundle, train = (Path(p) for p in json.loads(proc.stdout))
    for p in (module, configs, bundle, train):
        assert installed in p.parents, p  # the installed copy, not the checkout
    assert not configs.is_symlink() and (configs / "modalities" / "rgb.yaml").is_file()
    assert (bundle / "model" / "model.safetensors").is_file() and train.is_file()


def test_installed_package_generates_and_builds_the_world_from_another_directory(installed, tmp_path):
    world = _run(installed, tmp_path, "-m", "fourm.cli.data", "world", "--out", "w", "--num", "4", "--size", "32")
    assert world.returncode == 0, world.stderr
    assert (tmp_path / "w" / "dataset_dict.json").is_file()
    gen = _run(installed, tmp_path, "-m", "fourm.cli.generate", "--cond", "caption=a small red circle",
               "--target", "bboxes", "rgb", "--num-samples", "1", "--seed", "0", "--out", "gen")
    assert gen.returncode == 0, gen.stderr
    sequences = json.loads((tmp_path / "gen" / "sequences.json").read_text())
    assert sequences and (tmp_path / "gen" / "overview.png").is_file()
