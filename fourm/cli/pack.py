"""``fourm-pack``: copy a saved model or tokenizer directory for shipping, weights stored in fp16.

    fourm-pack runs/tok/rgb/tokenizer models/world-default/tokenizers/rgb
    fourm-pack runs/world_default/model models/world-default/model

Every ``*.safetensors`` file in the copy is rewritten in half precision (about half the size);
``from_pretrained`` loads it back into fp32 parameters. The copy is written atomically.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from fourm.cli import friendly_errors
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.half_weights import halve_safetensors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fourm-pack", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="directory written by save_pretrained (model or tokenizer)")
    parser.add_argument("dst", help="destination directory (replaced atomically)")
    parser.add_argument("--keep-fp32", action="store_true", help="copy weights unchanged")
    return parser


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    if not (src / "config.json").is_file():
        raise FourmError(f"{src} is not a saved model or tokenizer (no config.json)")
    before = after = 0
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        for weights in sorted(tmp.glob("*.safetensors")):
            if args.keep_fp32:
                size = weights.stat().st_size
                before, after = before + size, after + size
            else:
                b, a = halve_safetensors(weights)
                before, after = before + b, after + a
    print(f"packed {src} -> {dst}: weights {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0
