"""Command-line entry points. Each ``main`` turns FourmError into a one-line ``error:`` message."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from fourm.errors import FourmError


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
