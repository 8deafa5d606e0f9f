#!/usr/bin/env python
"""Train a FourM model from a YAML config: ``python train.py --config configs/train/<name>.yaml``.

Thin entry point; the logic lives in :mod:`fourm.cli.train`.
"""

import importlib
import importlib.util
import sys

if __name__ == "__main__":
    if importlib.util.find_spec("fourm.cli.train") is None:
        print("error: training is not yet available in this version of fourm", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(importlib.import_module("fourm.cli.train").main())
