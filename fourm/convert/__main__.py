"""``python -m fourm.convert``: same as ``fourm-convert``."""

from fourm.cli.convert import main

if __name__ == "__main__":
    raise SystemExit(main())
