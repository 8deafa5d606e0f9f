"""Files that ship with fourm: the configs and the default model bundle.

In a checkout, ``fourm/configs`` and ``fourm/models`` are links to the repository's ``configs/`` and
``models/``; a built wheel holds copies of them, so a non-editable ``pip install .`` keeps working
from any directory. Paths like ``configs/train/debug.yaml`` resolve against the working directory
first, then against these shipped files::

    resolve_path("configs/masking/mixture.yaml")   # ./configs/... if it exists, else the shipped copy
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
CONFIG_ROOT = PACKAGE_ROOT / "configs"  # the repository's configs/
DEFAULT_BUNDLE = PACKAGE_ROOT / "models" / "world-default"  # the shipped default model bundle


def shipped(path: str | Path) -> Path:
    """A shipped file named like in the repository (``configs/...`` or ``models/...``)."""
    return PACKAGE_ROOT / path


def resolve_path(path: str | Path) -> Path:
    """``path`` as given if it exists (or is absolute), else the shipped file of that name when
    there is one (so ``configs/...`` works from any directory and in an installed package)."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    packaged = shipped(path)
    return packaged if packaged.exists() else path
