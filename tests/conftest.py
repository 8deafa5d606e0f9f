"""Fixtures shared by every test directory."""

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded: toy-sized ops are faster and steadier without OpenMP on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def load_bench():
    """Import a ``bench/`` script as a module: ``load_bench("eval_world")``."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
