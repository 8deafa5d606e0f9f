#!/usr/bin/env python
"""Chained any-to-any generation from CLI prompts, e.g.
``python generate.py --cond caption="a red circle" --target bboxes rgb depth``.

Thin entry point; the logic lives in :mod:`fourm.cli.generate`.
"""

from fourm.cli.generate import main

if __name__ == "__main__":
    raise SystemExit(main())
