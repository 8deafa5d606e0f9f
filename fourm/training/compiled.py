"""``compile: true``: the model's training forward + loss under ``torch.compile``.

The loss keeps its eager signature (``MultimodalBatch -> (loss, {modality: float})``). Shapes are
dynamic, but its data-dependent parts (which modalities a batch holds, and how many tokens of each)
break the graph and recompile as batches change until torch's recompile limit, after which they run
eager; the transformer runs compiled. On CPU, inductor builds C++ kernels: a missing compiler is a
one-line error here, not a traceback at the first step.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import torch

from fourm.errors import FourmError


def check_compiler(device: torch.device) -> None:
    """FourmError when ``torch.compile`` cannot build kernels for ``device`` (CPU: no C++ compiler)."""
    if device.type != "cpu":
        return
    wanted = os.environ.get("CXX")
    found = shutil.which(wanted) if wanted else (shutil.which("g++") or shutil.which("clang++"))
    if not found:
        name = f"$CXX ({wanted})" if wanted else "g++ or clang++"
        raise FourmError(f"compile: true needs a C++ compiler on CPU ({name} not found); install one or set compile: false")


def compiled_loss(loss: Callable, device: torch.device) -> Callable:
    """``loss`` (e.g. ``FourM.loss``) under ``torch.compile(dynamic=True)``, after :func:`check_compiler`."""
    check_compiler(device)
    return torch.compile(loss, dynamic=True)
