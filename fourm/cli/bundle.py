"""``fourm-bundle``: make a self-contained model bundle from a trained FourM and an existing bundle.

    fourm-bundle runs/finetune_ce/model runs/finetune_ce/bundle \\
        --add-modality configs/modalities/extra/caption_embedding.yaml \\
        --tokenizer caption_embedding=runs/finetune_ce/tokenizers/caption_embedding

The output (``model/`` in fp16, the tokenizers, ``modalities.json``) is used like the default bundle:
``generate.py --model OUT``, ``fourm-retrieve ... --bundle OUT``.
"""

from __future__ import annotations

import argparse

from fourm.cli import ArgumentParser, friendly_errors, parse_assignments
from fourm.errors import FourmError
from fourm.utils.outputs import claim_output, is_model_bundle


def _parse_tokenizers(pairs: list[str]) -> dict[str, str]:
    out = {name: path.strip() for name, path in parse_assignments(pairs, "--tokenizer").items()}
    empty = [name for name, path in out.items() if not path]
    if empty:
        raise FourmError(f"--tokenizer {empty[0]}= names no directory (expected MODALITY=DIR)")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="fourm-bundle", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="FourM directory (save_pretrained: config.json + model.safetensors)")
    parser.add_argument("out", help="bundle directory to write (replaced atomically; refused if it is a folder or file "
                        "fourm-bundle did not write, unless --overwrite; never an input or inside one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty out that fourm-bundle did not write")
    parser.add_argument("--base", default=None, help="bundle whose tokenizers and registry are reused (default: models/world-default)")
    parser.add_argument("--add-modality", action="append", default=[], metavar="YAML",
                        help="registry YAML of a modality the base bundle lacks (repeatable)")
    parser.add_argument("--tokenizer", action="append", default=[], metavar="MODALITY=DIR",
                        help="tokenizer directory of a modality, instead of the registry's path (repeatable)")
    parser.add_argument("--keep-fp32", action="store_true", help="keep the model weights in fp32 (default: fp16)")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    from fourm.generation.assemble import assemble_bundle
    from fourm.generation.bundle import DEFAULT_BUNDLE

    args = build_parser().parse_args(argv)
    tokenizers = _parse_tokenizers(args.tokenizer)
    inputs = [("model", args.model), ("--base", args.base or DEFAULT_BUNDLE)]
    inputs += [("--add-modality", p) for p in args.add_modality] + [(f"--tokenizer {m}=", p) for m, p in tokenizers.items()]
    with claim_output(args.out, "fourm-bundle", inputs, args.overwrite, is_model_bundle, flag="out"):
        out = assemble_bundle(
            args.model, args.out, base=args.base, added=args.add_modality, tokenizers=tokenizers, half=not args.keep_fp32,
        )  # fmt: skip
    print(f"wrote bundle {out} (model/, tokenizers/, modalities.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
