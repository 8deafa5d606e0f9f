"""Helpers of the robustness tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fourm.data.raw_dataset import write_world_dataset
from fourm.data.world import WorldConfig


def tree_hash(path: Path) -> str:
    """Hash of every name and byte under ``path`` (a file or a folder)."""
    h = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*"))
    for p in files:
        h.update(str(p.relative_to(path) if p != path else p.name).encode() + b"\0")
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def error_line(capsys) -> str:
    """The one ``error:`` line on stderr (asserts there is exactly one line there)."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def write_world(path: Path, seed: int = 0) -> Path:
    return write_world_dataset(path, 8, size=32, seed=seed, val_fraction=0.25, num_workers=0, config=WorldConfig(size=32))
