"""``fourm-convert``: turn checkpoints of other 4M implementations into fourm models.

    fourm-convert ml4m SRC OUT [--keep t5_caption] [--tokenizer NAME=SRC ...] [--overwrite]
    fourm-convert ml4m-tokenizer SRC OUT [--image-size N] [--encoder-only] [--overwrite]

``ml4m``: SRC is a directory with ml-4m's ``config.json`` + ``model.safetensors`` (a released FM
model such as EPFL-VILAB/4M-7_B_CC12M, downloaded beforehand; a hub id works only when online and
huggingface_hub is installed). OUT receives a fourm model bundle: ``model/`` (the FourM model),
``tokenizers/``, ``modalities.json`` (the registry under ml-4m's modality names), ``generation.json``
(ml-4m's sampling settings) and ``ml4m_modalities.json`` (the conversion record), ready for
``generate.py --model OUT`` / ``FourMPipeline.from_pretrained(OUT)``. Modalities fourm cannot express
(t5_caption) are dropped and listed; ``--keep NAME`` makes that an error. ``--tokenizer NAME=SRC``
(repeatable) also converts the tokenizer of modality NAME into ``OUT/tokenizers/NAME``:
``text=<text_tokenizer_4m_wordpiece_30k.json>`` for the sequence modalities,
``tok_<name>[@<size>]=<VQ-VAE directory or hub id>`` for an image-token modality (a local DiVAE directory
converts with its diffusion decoder, written as an encoder directory + ``diffusion_decoder/``); each is
checked against the model first. Modalities without one keep working as token ids.

``ml4m-tokenizer``: one ml-4m tokenizer on its own: the WordPiece ``tokenizer.json`` file, or a VQ-VAE
or DiVAE directory (``--image-size``: working image size, default the tokenizer's own;
``--encoder-only``: leave the decoder out; a DiVAE otherwise converts with its diffusion decoder,
:mod:`fourm.convert.ml4m_divae`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fourm.cli import ArgumentParser, bounded_int, friendly_errors, parse_assignments
from fourm.utils.outputs import claim_output, is_saved_model

COMMAND = "fourm-convert ml4m"
TOKENIZER_COMMAND = "fourm-convert ml4m-tokenizer"


def _inputs(*sources: tuple[str, str]) -> list[tuple[str, str]]:
    """(option, path) pairs of the local inputs (hub ids are not paths)."""
    return [(option, s) for option, s in sources if Path(s).expanduser().exists()]


def _describe(entry: dict) -> str:
    if entry["kind"] == "text":
        return f"text  V={entry['vocab_size']}  sentinels={entry['num_sentinels']}  value bins={entry['coord_bins']}"
    only = ", encoder only" if entry["encoder_only"] else ""
    decoder = f", decoder: {entry['decoder']}" if entry.get("decoder") else ""
    return (f"{entry['kind']} ({entry['input']})  V={entry['vocab_size']}  N={entry['num_tokens']}"
            f" at {entry['image_size']}px{only}{decoder}")


def _ml4m(args: argparse.Namespace) -> int:
    from fourm.convert.ml4m import convert_ml4m, is_converted_bundle
    tokenizers = parse_assignments(args.tokenizer, "--tokenizer")
    inputs = _inputs(("SRC", args.src), *((f"--tokenizer {k}", v) for k, v in tokenizers.items()))
    with claim_output(args.out, COMMAND, inputs, args.overwrite, is_converted_bundle, flag="OUT") as out:
        info = convert_ml4m(args.src, out, keep=args.keep, tokenizers=tokenizers)
    for name, m in info.modalities.items():
        roles = "+".join(r for r, on in (("input", m.input), ("target", m.target)) if on)
        extra = f", {m.positions} positions" if m.positions != "sincos" else ""
        print(f"  {name:<24}{m.kind:<10}V={m.vocab_size:<7}L={m.length:<5}{roles}{extra}")
    for name, why in info.dropped.items():
        print(f"  dropped {name}: {why}")
    for name, entry in info.tokenizers.items():
        print(f"  tokenizer {name}: {_describe(entry)} -> {entry['path']}")
    missing = [n for n, m in info.modalities.items() if m.kind != "patches"
               and (n if m.kind == "image" else "text") not in info.tokenizers]
    if missing:
        print(f"  no tokenizer (token ids only): {', '.join(missing)}")
    print(f"fourm bundle written to {out} (generate.py --model {out})")
    return 0


def _ml4m_tokenizer(args: argparse.Namespace) -> int:
    from fourm.convert.ml4m import load_ml4m_tokenizer

    with claim_output(args.out, TOKENIZER_COMMAND, _inputs(("SRC", args.src)), args.overwrite, is_saved_model, flag="OUT") as out:
        tok, entry = load_ml4m_tokenizer(args.src, image_size=args.image_size, encoder_only=args.encoder_only)
        tok.save_pretrained(out)
    print(f"  {_describe(entry)}")
    for what, why in entry.get("left_out", {}).items():
        print(f"  left out {what}: {why}")
    print(f"fourm tokenizer written to {out}")
    return 0


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="fourm-convert", description="Convert other 4M checkpoints to fourm models")
    sub = parser.add_subparsers(dest="format", required=True)
    p = sub.add_parser("ml4m", help="a released apple/ml-4m FM model (config.json + model.safetensors)")
    p.add_argument("src", metavar="SRC", help="ml-4m model directory (or hub id, online only)")
    p.add_argument("out", metavar="OUT", help="output fourm model bundle")
    p.add_argument("--keep", action="append", default=[], metavar="MODALITY",
                   help="fail instead of dropping this unsupported modality (repeatable)")
    p.add_argument("--tokenizer", action="append", default=[], metavar="NAME=SRC",
                   help="also convert a tokenizer: text=<tokenizer.json> or <tok_ modality>=<VQ-VAE / DiVAE dir> (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=_ml4m)
    t = sub.add_parser("ml4m-tokenizer", help="one apple/ml-4m tokenizer (WordPiece tokenizer.json, VQ-VAE or DiVAE)")
    t.add_argument("src", metavar="SRC", help="tokenizer.json file, or VQ-VAE / DiVAE directory (or hub id, online only)")
    t.add_argument("out", metavar="OUT", help="output fourm tokenizer directory")
    t.add_argument("--image-size", type=bounded_int(1, 4096), default=None,
                   help="VQ-VAE: working image size (default: the tokenizer's own)")
    t.add_argument("--encoder-only", action="store_true", help="VQ-VAE / DiVAE: leave the decoder out (a DiVAE's diffusion decoder included)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    t.set_defaults(func=_ml4m_tokenizer)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
