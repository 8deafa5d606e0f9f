"""``fourm-pack``: copy a saved model or tokenizer directory for shipping, weights stored in fp16.

    fourm-pack runs/tok/rgb/tokenizer models/world-default/tokenizers/rgb
    fourm-pack runs/world_default/model models/world-default/model

Every ``*.safetensors`` file in the copy is rewritten in half precision (about half the size);
``from_pretrained`` loads it back into fp32 parameters. The copy is written atomically.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from fourm.cli import ArgumentParser, friendly_errors
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.half_weights import halve_safetensors
from fourm.utils.outputs import MARKER, claim_output, is_saved_model
from fourm.utils.weights import safetensors_shapes


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="fourm-pack", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="directory written by save_pretrained (model or tokenizer)")
    parser.add_argument("dst", help="destination directory (replaced atomically; refused if it is a folder or file "
                        "fourm-pack did not write, unless --overwrite; never the source or inside it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty dst that fourm-pack did not write")
    parser.add_argument("--keep-fp32", action="store_true", help="copy weights unchanged")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    if not (src / "config.json").is_file():
        raise FourmError(f"{src} is not a saved model or tokenizer (no config.json)")
    _check_config(src / "config.json")
    for weights in sorted(src.glob("*.safetensors")):
        safetensors_shapes(weights)  # a damaged file -> an error naming it, before any output is made
    with claim_output(dst, "fourm-pack", [("src", src)], args.overwrite, is_saved_model, flag="dst"):
        before, after = _pack(src, dst, args.keep_fp32)
    print(f"packed {src} -> {dst}: weights {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


def _check_config(path: Path) -> None:
    """The copy is only as good as its config: it must be a UTF-8 JSON object (else a packed model
    that does not load would be written without a word)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise FourmError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); not a saved model or tokenizer") from None
    except ValueError as e:
        raise FourmError(f"{path} is not valid JSON ({e}); not a saved model or tokenizer") from None
    except OSError as e:
        raise FourmError(f"cannot read {path}: {e}") from None
    if not isinstance(config, dict):
        raise FourmError(f"{path} holds a JSON {type(config).__name__}, expected an object; not a saved model or tokenizer")


def _pack(src: Path, dst: Path, keep_fp32: bool) -> tuple[int, int]:
    before = after = 0
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MARKER))
        for weights in sorted(tmp.glob("*.safetensors")):
            if keep_fp32:
                size = weights.stat().st_size
                before, after = before + size, after + size
            else:
                b, a = halve_safetensors(weights)
                before, after = before + b, after + a
    return before, after


if __name__ == "__main__":
    raise SystemExit(main())
