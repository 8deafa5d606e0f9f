"""Fixtures of the robustness tests: a tiny raw world dataset, a text tokenizer, tree hashes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from robustness_testing import write_world

from fourm.data.raw_dataset import RawSamples, load_raw_dataset


@pytest.fixture(scope="session")
def world_raw(tmp_path_factory) -> Path:
    """A read-only 6 train + 2 val world dataset (32x32); copy it before changing it."""
    return write_world(tmp_path_factory.mktemp("robust") / "raw")


@pytest.fixture(scope="session")
def text_tokenizer_dir(world_raw, tmp_path_factory) -> Path:
    from tokenizers_zoo.text import TextTokenizer, corpus_from_samples

    samples = RawSamples(load_raw_dataset(world_raw)["train"])
    tok = TextTokenizer.train(corpus_from_samples(samples[i] for i in range(len(samples))), vocab_size=500)
    out = tmp_path_factory.mktemp("tok") / "text"
    tok.save_pretrained(out)
    return out


@pytest.fixture
def live_pid():
    """The pid of a process that lives for the test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
