"""Fixtures of the training tests (helpers such as tiny_config live in training_testing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fourm.training.synthetic import write_synthetic_tokens


@pytest.fixture(scope="session")
def token_data(tmp_path_factory) -> Path:
    """48 train + 8 val synthetic samples (rgb, depth, caption)."""
    return write_synthetic_tokens(tmp_path_factory.mktemp("tokens") / "synthetic", num_train=48, num_val=8, seed=1)


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded: toy-sized ops are faster and steadier without OpenMP on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
