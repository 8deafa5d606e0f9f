"""Fixtures of the model tests (helpers live in fourm_testing.py)."""

import pytest
import torch
from fourm_testing import two_sample_batch

from fourm.core.batch import MultimodalBatch


@pytest.fixture
def batch() -> MultimodalBatch:
    return two_sample_batch()


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded: toy-sized ops are faster and steadier without OpenMP on a shared CPU."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
