"""Deprecated: the toy retrieval setups moved to :mod:`fourm.testing.retrieval`. This name stays for one
release (tests elsewhere still import it); attribute access warns and forwards."""

from __future__ import annotations

import importlib
import warnings

_NEW = "fourm.testing.retrieval"


def __getattr__(name: str):
    # loaded on first use, not at import: fourm.testing sits above fourm.retrieval
    module = importlib.import_module(_NEW)
    if not hasattr(module, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{__name__} is deprecated; import {name} from {_NEW}", DeprecationWarning, stacklevel=2)
    return getattr(module, name)
