"""File names of a saved FourM model directory (``save_pretrained``), and the test that tells a
released ml-4m FM directory (its ``config.json`` has ``domains_in``) from one; shared by
:mod:`fourm.model.fourm` and the ml-4m reader :mod:`fourm.model.ml4m`."""

from __future__ import annotations

import json
from pathlib import Path

from fourm.utils.weights import CONFIG_NAME, WEIGHTS_NAME  # the names every save_pretrained_dir writes

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "is_ml4m_config"]


def is_ml4m_config(file: Path) -> bool:
    """Whether ``file`` is the config.json of an ml-4m FM model (a JSON object with ``domains_in``)."""
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "domains_in" in data
