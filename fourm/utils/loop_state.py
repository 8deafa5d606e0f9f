"""One file holding everything a simple single-process training loop needs to resume exactly.

    modules = {"stem": stem, "head": head}
    loop = load_loop_state(path, modules, opt)            # None: nothing saved, start at step 0
    if loop is not None:
        step, losses, elapsed = loop.step, loop.losses, loop.elapsed
        sampler.bit_generator.state = loop.extra["sampler"]
    ...
    save_loop_state(path, LoopState(step, losses, elapsed, {"sampler": sampler.bit_generator.state}),
                    modules, opt)                           # atomic; also the process's RNG states

``extra`` holds JSON-able values (numpy bit-generator states, rows of a log) and tensors (a
``torch.Generator``'s ``get_state()``). The caller checks that the state belongs to the same inputs
and settings (:func:`fourm.utils.outputs.claim_partial`).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_path
from fourm.utils.rng import rng_state, set_rng_state


@dataclass
class LoopState:
    step: int  # steps done
    losses: list[float]  # one per step done
    elapsed: float = 0.0  # seconds of training so far, over all resumes
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-able values or tensors


def save_loop_state(path: str | Path, loop: LoopState, modules: Mapping[str, nn.Module],
                    optimizer: torch.optim.Optimizer) -> None:  # fmt: skip
    """Write ``loop``, the modules' and optimizer's states and this process's RNG states to ``path``
    atomically."""
    tensors = {k: v for k, v in loop.extra.items() if isinstance(v, torch.Tensor)}
    plain = {k: v for k, v in loop.extra.items() if k not in tensors}
    state = {"step": loop.step, "losses": loop.losses, "elapsed": loop.elapsed, "extra": json.dumps(plain),
             "extra_tensors": tensors, "modules": {k: m.state_dict() for k, m in modules.items()},
             "optimizer": optimizer.state_dict(), "rng": rng_state()}  # fmt: skip
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_loop_state(path: str | Path, modules: Mapping[str, nn.Module],
                    optimizer: torch.optim.Optimizer) -> LoopState | None:  # fmt: skip
    """Restore a :func:`save_loop_state` file into ``modules``, ``optimizer`` and the RNGs -> the loop's
    state, or None when ``path`` does not exist. FourmError naming the file when it cannot be read."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if set(state["modules"]) != set(modules):
            raise ValueError(f"it holds {sorted(state['modules'])}, not {sorted(modules)}")
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        optimizer.load_state_dict(state["optimizer"])
        loop = LoopState(int(state["step"]), [float(v) for v in state["losses"]], float(state["elapsed"]),
                         {**json.loads(state["extra"]), **state["extra_tensors"]})  # fmt: skip
        set_rng_state(state["rng"])
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as e:
        raise FourmError(f"cannot resume from {path}: {str(e).splitlines()[0]}") from e
    if len(loop.losses) != loop.step:
        raise FourmError(f"cannot resume from {path}: {len(loop.losses)} losses for {loop.step} steps")
    return loop
