"""Where bf16 autocast pays: CUDA with bf16 support, and CPUs with native bf16 instructions.

On a CPU with AVX512-BF16 or AMX, bf16 matmuls run several times faster than fp32; on one without
(e.g. AVX2-only), oneDNN emulates them and they run about 100x slower (measured on this project's
2-core AMD EPYC: a 2048x256 @ 256x1024 matmul takes 10 ms in fp32, 990 ms in bf16), and bf16
convolutions 5-40x slower. So ``precision: auto`` (the default of training, generation, retrieval
and pre-tokenization) means bf16 autocast only where the hardware has it::

    resolve_precision("auto", "cpu")      # "bf16" or "fp32", by the CPU
    with bf16_autocast(device):           # autocast when fast_bf16(device), else a no-op
        ...

``FOURM_CPU_BF16=1`` / ``=0`` overrides the CPU detection.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from functools import cache

import torch

from fourm.errors import FourmError

PRECISIONS = ("auto", "bf16", "fp32")


@cache
def cpu_has_bf16() -> bool:
    """True if this CPU runs bf16 natively (AVX512-BF16 or AMX tiles), or ``FOURM_CPU_BF16=1``."""
    override = os.environ.get("FOURM_CPU_BF16")
    if override in ("0", "1"):
        return override == "1"
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(bool(check()) for check in checks if check is not None)


def fast_bf16(device: torch.device | str) -> bool:
    """Whether bf16 autocast speeds ``device`` up (CUDA with bf16 support, or a bf16-capable CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_bf16()
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` where :func:`fast_bf16`, else ``fp32``; ``bf16`` / ``fp32`` as given."""
    if precision not in PRECISIONS:
        raise FourmError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return precision


def bf16_autocast(device: torch.device | str, precision: str = "auto"):
    """A bf16 autocast context for ``device`` if ``precision`` resolves to bf16, else a no-op."""
    device = torch.device(device)
    if device.type in ("cpu", "cuda") and resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
