"""Command-line entry points. Each ``main`` turns FourmError into a one-line ``error:`` message."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from fourm.errors import FourmError


def parse_assignments(items: list[str], option: str) -> dict[str, str]:
    """``["name=value", ...]`` -> {name: value}; FourmError for a malformed or repeated item."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise FourmError(f"malformed {option} '{item}' (expected NAME=VALUE, e.g. {option} rgb=...)")
        if name in out:
            raise FourmError(f"{option} '{name}' is given twice")
        out[name] = value
    return out


def friendly_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorator for CLI mains: FourmError (and missing files) -> ``error: msg`` on stderr, exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except (FourmError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
