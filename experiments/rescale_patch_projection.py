"""Multiply the pixel-patch projections of a saved FourM by a factor (an experiment helper).

Models fine-tuned before the patch projection's init was matched to the position table (weight std
0.02; now :func:`fourm.model.patch_stem.patch_init_std`, about 4.4x larger for 8x8x3 patches) read
their pixels through a projection whose output is drowned by the positions; scaling it up lets
further training use the pixels (docs/experiments/retrieval.md).

    python experiments/rescale_patch_projection.py runs/pixels_focus/checkpoints/step_00000500/model runs/pixels_rescaled --factor 4
"""

from __future__ import annotations

import argparse
import sys

import torch

from fourm.errors import FourmError
from fourm.model.fourm import FourM
from fourm.training.finetune import resolve_model_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a save_pretrained directory, checkpoint or run directory")
    p.add_argument("out", help="directory to write the rescaled model to")
    p.add_argument("--factor", type=float, default=4.0, help="scale of the weight and bias (default 4)")
    args = p.parse_args(argv)
    try:
        if not args.factor > 0:
            raise FourmError(f"--factor must be > 0, got {args.factor}")
        model = FourM.from_pretrained(resolve_model_dir(args.source))
        projections = model.embeddings.patch_embed
        if not len(projections):
            raise FourmError(f"{args.source} has no patch modality (nothing to rescale)")
        if model.config.patch_stem != "linear":
            raise FourmError(f"{args.source} embeds patches with a {model.config.patch_stem} stem (only linear ones rescale)")
        with torch.no_grad():
            for proj in projections.values():
                proj.weight.mul_(args.factor)
                proj.bias.mul_(args.factor)
        model.save_pretrained(args.out)
    except FourmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"rescaled {', '.join(projections)} by {args.factor:g} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
