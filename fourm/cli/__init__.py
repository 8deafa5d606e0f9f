"""Command-line entry points. Each ``main`` turns FourmError into a one-line ``error:`` message."""

from __future__ import annotations

import argparse
import functools
import math
import re
import sys
import warnings
from collections.abc import Callable

from fourm.errors import FourmError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are FourmErrors: ``friendly_errors`` prints them as one
    ``error: ...`` line (exit code 2) like every other bad input. Sub-parsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        raise FourmError(f"{message} (see {self.prog} --help)")


def finite_float(text: str) -> float:
    """argparse ``type=``: a finite number (``nan``, ``inf`` and non-numbers are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0 (a time limit, a scale)."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """argparse ``type=``: a finite number in [0, 1)."""
    value = finite_float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


# Largest image side the data commands write (import, world): far above what the tokenizers use,
# small enough that a typo (--size 100000) fails at once instead of running out of memory.
MAX_IMAGE_SIDE = 2048


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse ``type=``: an integer in [low, high] (high None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            expected = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected an integer {expected}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


# Seeds are torch generator seeds: 64-bit integers (a larger one is a traceback inside torch).
SEED_RANGE = (-(2**63), 2**63 - 1)


def seed_int(text: str) -> int:
    """argparse ``type=`` of ``--seed``: an integer that fits a 64-bit torch seed."""
    return bounded_int(*SEED_RANGE)(text)


_DEVICE = re.compile(r"(cpu|cuda|mps|xpu|meta)(:\d+)?")


def device_name(text: str) -> str:
    """argparse ``type=``: a torch device name (cpu, cuda, cuda:N, mps, xpu, xpu:N); checked without
    importing torch, so a typo fails in one line instead of a RuntimeError traceback later."""
    if not _DEVICE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a device such as cpu, cuda or cuda:0, got {text!r}")
    return text.strip()


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


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one ``warning: msg`` line on stderr (no source line, no file path)."""
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def friendly_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorator for CLI mains: FourmError (and missing files) -> ``error: msg`` on stderr, exit 2;
    warnings -> one ``warning: msg`` line each."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warning_line
                return main(*args, **kwargs) or 0
        except (FourmError, FileNotFoundError) as e:
            message = " ".join(str(e).split("\n"))  # one line, whatever the message holds
            print(f"error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper


def subcommand_main(build_parser: Callable[[], argparse.ArgumentParser]) -> Callable[..., int]:
    """``main(argv)`` of a command with subcommands: each subparser sets ``func(args)``."""

    @friendly_errors
    def main(argv: list[str] | None = None) -> int:
        args = build_parser().parse_args(argv)
        return args.func(args) or 0

    return main
