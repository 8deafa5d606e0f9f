"""Fixtures of the training tests (helpers such as tiny_config live in training_testing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fourm.training.synthetic import write_synthetic_tokens


@pytest.fixture(scope="session")
def token_data(tmp_path_factory) -> Path:
    """48 train + 8 val synthetic samples (rgb, depth, caption)."""
    return write_synthetic_tokens(tmp_path_factory.mktemp("tokens") / "synthetic", num_train=48, num_val=8, seed=1)
