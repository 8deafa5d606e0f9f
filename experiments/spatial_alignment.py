"""Does a bundle's rgb -> depth keep the image's layout? Correlates the predicted depth's residual
(the mean depth map of the scenes removed) with the truth and with its flips / transpose.

    python experiments/spatial_alignment.py [--model models/world-default] [--num 32] [--inputs rgb_pixels]

A model that keeps the layout correlates best with "truth"; one whose patches are permuted
correlates best with the permutation (issue 16: the 2026-12 default scored ~0.1 for every view).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fourm.eval.world import given_conditions, load_samples
from fourm.generation.pipeline import FourMPipeline

VIEWS = {
    "truth": lambda a: a,
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1, :],
    "transpose": lambda a: a.T,
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="models/world-default")
    p.add_argument("--num", type=int, default=32)
    p.add_argument("--start", type=int, default=300)
    p.add_argument("--inputs", default="rgb_pixels", help="comma list among rgb_pixels, rgb, caption")
    p.add_argument("--target", default="depth")
    args = p.parse_args()
    pipe = FourMPipeline.from_pretrained(args.model)
    pipe.image_inputs = "both"  # the image's tokens and patches, for --inputs to choose from
    samples = load_samples(None, args.num, "val", pipe, args.start)
    raw = {"rgb": [s["rgb"] for s in samples], "caption": [s["caption"] for s in samples]}
    conds = {c: g for c, g in given_conditions(pipe, raw).items() if c in args.inputs.split(",")}
    torch.manual_seed(0)
    res = pipe.generate(conds, [pipe.default_target(args.target, temperature=0.0)], num_samples=args.num, progress=False)
    pred = np.stack([np.asarray(v, dtype=np.float32) for v in res.values[args.target]])
    true = np.stack([np.asarray(s[args.target], dtype=np.float32) for s in samples])
    if pred.ndim == 4:
        pred, true = pred.mean(-1), true.mean(-1)
    mean = true.mean(0)
    out = {}
    for name, view in VIEWS.items():
        cs = [np.corrcoef((p - mean).ravel(), view(t - mean).ravel())[0, 1] for p, t in zip(pred, true)]
        out[name] = float(np.nanmean(cs))
    print(f"inputs={sorted(conds)} target={args.target}: " + "  ".join(f"{k} {v:.3f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
