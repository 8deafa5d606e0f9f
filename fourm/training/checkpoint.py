"""Training checkpoints: atomic directories with everything needed for an exact resume.

Layout of ``<run>/checkpoints/``::

    step_00000200/
        model/config.json, model/model.safetensors   FourM.save_pretrained (loadable on its own)
        optimizer.pt                                 AdamW state (not with DeepSpeed)
        deepspeed/                                   DeepSpeed engine state (ZeRO partitions), if used
        scheduler.pt                                 {"step": n, "time_fraction": f}
        rng_rank<r>.pt                               python / numpy / torch (/ cuda) RNG states per process
        trainer_state.json                           step, epoch, data position, counters
    latest                                           text file: name of the newest complete checkpoint

A checkpoint directory is assembled under a temporary name and renamed into place only when every
process has written its part (:func:`fourm.utils.atomic.atomic_dir`), so a crash while saving
leaves the previous checkpoints untouched. Only the newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir, atomic_write_text
from fourm.utils.config import Config, read_json_object
from fourm.utils.rng import rng_state, set_rng_state
from fourm.utils.weights import load_checked

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step_(\d{8})$")


@dataclass
class TrainerState(Config):
    """Loop counters and data position saved with a checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current data epoch
    samples_in_epoch: int = 0  # samples of this epoch consumed (all processes together)
    samples_seen: int = 0
    tokens_seen: int = 0
    num_processes: int = 1
    global_batch: int = 1  # samples per micro-batch over all processes, when saved
    elapsed_seconds: float = 0.0  # training wall time so far, over all resumes (the max_minutes budget)


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoint directories under ``root`` (``<run>/checkpoints``), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(root: str | Path) -> Path | None:
    """The checkpoint the ``latest`` pointer names, else the newest complete one, else None."""
    root = Path(root)
    pointer = root / LATEST
    if pointer.is_file():
        try:
            target = root / pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError, ValueError):  # a damaged pointer: fall back to the scan
            target = None
        if target is not None and (target / STATE_FILE).is_file():
            return target
    found = list_checkpoints(root)
    return found[-1] if found else None


def resolve_resume(resume: str | None, run_dir: str | Path) -> Path | None:
    """``None`` -> None; ``"auto"`` -> the run's latest checkpoint (None if there is none yet);
    a path -> that checkpoint, or the latest checkpoint of a run directory it names."""
    if resume is None:
        return None
    if resume == "auto":
        return latest_checkpoint(Path(run_dir) / CHECKPOINTS)
    path = Path(resume)
    if not path.exists():
        raise FourmError(f"checkpoint not found: {path} (expected a checkpoint or run directory, or 'auto')")
    if (path / STATE_FILE).is_file():
        return path
    for root in (path, path / CHECKPOINTS):
        found = latest_checkpoint(root)
        if found is not None:
            return found
    raise FourmError(f"{path} is not a checkpoint: {STATE_FILE} is missing and it holds no checkpoints")


# ------------------------------------------------------------------------------------------ save
@dataclass
class CheckpointParts:
    """How each process writes / reads its share of a checkpoint (set up by the loop)."""

    save_model: Callable[[Path], None]  # main process: FourM.save_pretrained
    optimizer: Any  # object with state_dict/load_state_dict, or None when the engine saves it
    scheduler: Any
    engine_save: Callable[[Path], None] | None = None  # every process (DeepSpeed)
    engine_load: Callable[[Path], None] | None = None
    load_model: Callable[[Path], None] | None = None  # every process (without an engine)


def save_checkpoint(
    root: str | Path,
    state: TrainerState,
    parts: CheckpointParts,
    keep: int,
    rank: int = 0,
    is_main: bool = True,
    broadcast: Callable[[Any], Any] = lambda x: x,
    barrier: Callable[[], None] = lambda: None,
) -> Path:
    """Write ``<root>/step_<n>`` atomically from every process, point ``latest`` at it and prune
    to the newest ``keep``. ``broadcast`` shares the main process's temporary directory name."""
    root = Path(root)
    final = root / checkpoint_name(state.step)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_dir(final)) if is_main else None
        tmp = Path(broadcast(str(tmp) if tmp is not None else None))
        if parts.engine_save is not None:
            parts.engine_save(tmp / "deepspeed")
        torch.save(rng_state(), tmp / f"rng_rank{rank}.pt")
        if is_main:
            parts.save_model(tmp / "model")
            if parts.optimizer is not None:
                torch.save(parts.optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(parts.scheduler.state_dict(), tmp / "scheduler.pt")
            (tmp / STATE_FILE).write_text(json.dumps(state.to_dict(), indent=2) + "\n")
        barrier()  # every process has written its part before the directory is renamed
    if is_main:
        atomic_write_text(root / LATEST, final.name + "\n")
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


# ------------------------------------------------------------------------------------------ load
def load_model_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load ``path/model.safetensors`` (a FourM.save_pretrained directory) into ``model`` in place;
    FourmError if the file is missing, corrupt or does not match the model."""
    file = Path(path) / "model.safetensors"
    if not file.is_file():
        raise FourmError(f"corrupt checkpoint {Path(path).parent}: {file.name} is missing")
    load_checked(model, file, f"checkpoint weights {file} do not match the model", label="corrupt checkpoint file")


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise FourmError(f"corrupt checkpoint {path.parent}: {path.name} is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated / foreign files
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise FourmError(f"corrupt checkpoint file {path}: {first}") from None


def read_trainer_state(path: str | Path) -> TrainerState:
    """The TrainerState of checkpoint directory ``path`` (FourmError if missing or corrupt)."""
    path = Path(path)
    file = path / STATE_FILE
    if not file.is_file():
        raise FourmError(f"{path} is not a checkpoint: {STATE_FILE} is missing")
    data = read_json_object(file, "checkpoint file", corrupt="corrupt checkpoint file")
    try:
        return TrainerState.from_dict(data)
    except FourmError as e:
        raise FourmError(f"corrupt checkpoint file {file}: {e}") from None


def load_checkpoint(path: str | Path, parts: CheckpointParts, rank: int = 0) -> TrainerState:
    """Restore model, optimizer, scheduler and this process's RNG states from ``path``."""
    path = Path(path)
    state = read_trainer_state(path)
    if parts.engine_load is not None:
        if not (path / "deepspeed").is_dir():
            raise FourmError(f"checkpoint {path} has no DeepSpeed state (saved without DeepSpeed?)")
        parts.engine_load(path / "deepspeed")
    elif parts.load_model is not None:
        parts.load_model(path / "model")
    if parts.optimizer is not None:
        if not (path / "optimizer.pt").is_file() and (path / "deepspeed").is_dir():
            raise FourmError(f"checkpoint {path} holds DeepSpeed optimizer state; resume it under DeepSpeed")
        try:
            parts.optimizer.load_state_dict(_torch_load(path / "optimizer.pt"))
        except (ValueError, KeyError, RuntimeError) as e:
            raise FourmError(f"checkpoint {path}: optimizer state does not fit this model: {e}") from None
    parts.scheduler.load_state_dict(_torch_load(path / "scheduler.pt"))
    rng_file = path / f"rng_rank{rank}.pt"
    if not rng_file.is_file():  # more processes than when saved: derive from rank 0's state
        rng_file = path / "rng_rank0.pt"
    try:
        set_rng_state(_torch_load(rng_file))
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise FourmError(f"corrupt checkpoint file {rng_file}: {e}") from None
    return state
