#!/usr/bin/env python
"""Chained any-to-any generation from CLI prompts, e.g.
``python generate.py --cond caption="a red circle" --target bboxes rgb depth``.

Thin entry point; the logic lives in :mod:`fourm.cli.generate`.
"""

import importlib
import importlib.util
import sys

if __name__ == "__main__":
    if importlib.util.find_spec("fourm.cli.generate") is None:
        print("error: generation is not yet available in this version of fourm", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(importlib.import_module("fourm.cli.generate").main())
