"""Fixtures shared by every test directory."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded: toy-sized ops are faster and steadier without OpenMP on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
