"""Store a safetensors weights file in half precision (fp16) to ship small checkpoints.

Loading needs nothing special: ``load_state_dict`` copies fp16 values into the fp32 parameters.
Tensors that fp16 cannot hold (non-float, or values beyond its range) are kept as they are.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_path
from fourm.utils.weights import CORRUPT_ERRORS, corrupt_error

FP16_MAX = 65504.0


def halve_safetensors(path: str | Path) -> tuple[int, int]:
    """Rewrite ``path`` with fp32 tensors stored as fp16, atomically. Returns (bytes before, after)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    path = Path(path)
    if not path.is_file():
        raise FourmError(f"weights file not found: {path}")
    before = path.stat().st_size
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, *CORRUPT_ERRORS) as e:
        raise corrupt_error(path, e) from None
    for key, value in state.items():
        if value.dtype == torch.float32 and (value.numel() == 0 or value.abs().max().item() < FP16_MAX):
            state[key] = value.to(torch.float16)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return before, path.stat().st_size
