"""Simulated interruptions for resume tests: a save function that saves, then raises KeyboardInterrupt.

    original = kill_after_save(monkeypatch, stem_pretrain, "save_loop_state", lambda path, loop, *_: loop.step == 4)
    with pytest.raises(KeyboardInterrupt):
        pretrain_image_stem(..., state_path=state)
    monkeypatch.setattr(stem_pretrain, "save_loop_state", original)   # the rerun saves normally
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any


def kill_after_save(monkeypatch: Any, module: ModuleType, name: str, when: Callable[..., bool]) -> Callable:
    """Replace ``module.name`` (a save function) by one that saves and then, where ``when(*args)``
    holds, raises KeyboardInterrupt as a Ctrl-C right after that save would. Returns the original."""
    save = getattr(module, name)

    def save_then_kill(*args: Any, **kwargs: Any) -> Any:
        result = save(*args, **kwargs)
        if when(*args):
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(module, name, save_then_kill)
    return save
