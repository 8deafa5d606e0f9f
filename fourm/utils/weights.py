"""Reading safetensors weights with checks, the one home of "load and check" for every model and
tokenizer: a missing, damaged or mismatched file is a one-line FourmError, never a traceback, and
shapes are checked (from the header where possible) before anything big is allocated::

    shapes = safetensors_shapes(path)                    # {name: shape}, tensors not read
    check_shapes(shapes, expected, f"{path} does not match {config}")
    load_checked(module, path, f"{path} does not match {config}")   # read + check + load_state_dict
    load_state_checked(module, state, "converted weights do not fit FourM")   # an in-memory state dict
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.config import read_json_object

# Errors safetensors / the OS raise for a damaged, truncated or non-safetensors file.
CORRUPT_ERRORS = (OSError, ValueError, RuntimeError, TypeError, KeyError, OverflowError, MemoryError)


def corrupt_error(path: Path, error: BaseException, label: str = "corrupt weights file") -> FourmError:
    first = (str(error).splitlines() or [type(error).__name__])[0][:200]
    return FourmError(f"{label} {path}: {first}")


def safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from the header of a safetensors file, without reading the tensors;
    FourmError for a missing or damaged file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FourmError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, *CORRUPT_ERRORS) as e:
        raise corrupt_error(path, e) from None


def read_safetensors(path: str | Path, device: str = "cpu", label: str = "corrupt weights file") -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; FourmError ``"<label> <path>: <reason>"`` if it is missing
    or damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FourmError(f"weights file not found: {path}")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, *CORRUPT_ERRORS) as e:
        raise corrupt_error(path, e, label) from None


def check_shapes(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], subject: str) -> None:
    """FourmError ``"<subject>: missing [...]"`` / ``unexpected [...]`` / ``'k' has shape ...``
    unless ``found`` has exactly the names and shapes of ``expected``."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise FourmError(f"{subject}: {detail}")
    for key, shape in found.items():
        if tuple(shape) != tuple(expected[key]):
            raise FourmError(f"{subject}: '{key}' has shape {tuple(shape)}, expected {tuple(expected[key])}")


def state_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], subject: str) -> nn.Module:
    """Load ``state`` into ``module`` in place after checking its names and shapes
    (:func:`check_shapes` with ``subject``); returns ``module``."""
    check_shapes({k: tuple(v.shape) for k, v in state.items()}, state_shapes(module), subject)
    module.load_state_dict(state)
    return module


def load_checked(module: nn.Module, path: str | Path, subject: str, label: str = "corrupt weights file") -> None:
    """Read ``path``, check its names and shapes against ``module`` (:func:`check_shapes` with
    ``subject``) and load it in place."""
    load_state_checked(module, read_safetensors(path, label=label), subject)


CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_pretrained_dir(module: nn.Module, config, path: str | Path) -> None:
    """``config.json`` (``config.save_json``) + ``model.safetensors`` into directory ``path``,
    replaced atomically. The weights carry one metadata key, so the same weights give the same bytes
    (safetensors writes a multi-key metadata dict in a per-process random order)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_dir(path) as tmp:
        config.save_json(tmp / CONFIG_NAME)
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})


def read_pretrained_dir(path: str | Path, what: str = "tokenizer") -> tuple[dict, Path]:
    """The directory ``save_pretrained_dir`` writes -> (its config.json as a dict, its weights path);
    FourmError naming the directory or the missing / corrupt file."""
    path = Path(path)
    if not path.is_dir():
        raise FourmError(f"{what} directory not found: {path}")
    cfg_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise FourmError(f"{what} {path} is missing {p.name} (expected {CONFIG_NAME} + {WEIGHTS_NAME})")
    return read_json_object(cfg_path, f"{what} config", corrupt=f"corrupt {what} config"), weights_path
