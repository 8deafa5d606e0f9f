"""Which process of a multi-process launch this is (``accelerate launch`` / ``torchrun`` set
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``); one process when none is set."""

from __future__ import annotations

import os

from fourm.errors import FourmError


def process_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the launcher's environment; (0, 1, 0) without one."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise FourmError(
            f"RANK / WORLD_SIZE / LOCAL_RANK must be integers, got {os.environ.get('RANK')!r}, "
            f"{os.environ.get('WORLD_SIZE')!r}, {os.environ.get('LOCAL_RANK')!r}"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise FourmError(f"RANK {rank} is not in [0, WORLD_SIZE {world})")
    return rank, world, local
