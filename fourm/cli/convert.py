"""``fourm-convert``: turn checkpoints of other 4M implementations into fourm models.

    fourm-convert ml4m SRC OUT [--keep t5_caption] [--overwrite]

``ml4m``: SRC is a directory with ml-4m's ``config.json`` + ``model.safetensors`` (a released FM
model such as EPFL-VILAB/4M-7_B_CC12M, downloaded beforehand; a hub id works only when online and
huggingface_hub is installed). OUT receives a fourm model directory (``config.json``,
``model.safetensors``) and ``ml4m_modalities.json``, the modality map under ml-4m's names. Modalities
fourm cannot express (t5_caption) are dropped and listed; ``--keep NAME`` makes that an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fourm.cli import ArgumentParser, friendly_errors

COMMAND = "fourm-convert ml4m"


def _ml4m(args: argparse.Namespace) -> int:
    from fourm.convert.ml4m import convert_ml4m
    from fourm.utils.outputs import claim_output, is_saved_model

    local = Path(args.src).expanduser()
    inputs = [("SRC", args.src)] if local.exists() else []
    with claim_output(args.out, COMMAND, inputs, args.overwrite, is_saved_model, flag="OUT") as out:
        info = convert_ml4m(args.src, out, keep=args.keep)
    for name, m in info.modalities.items():
        roles = "+".join(r for r, on in (("input", m.input), ("target", m.target)) if on)
        extra = f", {m.positions} positions" if m.positions != "sincos" else ""
        print(f"  {name:<24}{m.kind:<10}V={m.vocab_size:<7}L={m.length:<5}{roles}{extra}")
    for name, why in info.dropped.items():
        print(f"  dropped {name}: {why}")
    print(f"fourm model written to {out}")
    return 0


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="fourm-convert", description="Convert other 4M checkpoints to fourm models")
    sub = parser.add_subparsers(dest="format", required=True)
    p = sub.add_parser("ml4m", help="a released apple/ml-4m FM model (config.json + model.safetensors)")
    p.add_argument("src", metavar="SRC", help="ml-4m model directory (or hub id, online only)")
    p.add_argument("out", metavar="OUT", help="output fourm model directory")
    p.add_argument("--keep", action="append", default=[], metavar="MODALITY",
                   help="fail instead of dropping this unsupported modality (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    args = parser.parse_args(argv)
    return _ml4m(args)


if __name__ == "__main__":
    raise SystemExit(main())
