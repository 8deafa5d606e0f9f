"""rgb -> caption with and without a caption prefix: stated count, distinct objects named, colours,
shapes, and the share of the caption's relations that hold on the true image. Round 16 of issue 16
(docs/experiments/default_model.md).

    python experiments/caption_prefix.py --prefix there [--model B] [--num 512] [--start 256]
"""

from __future__ import annotations

import argparse

import numpy as np

from fourm.eval.captions import parse_caption
from fourm.eval.world import given_conditions, load_eval_pipeline, load_samples
from fourm.eval.world_scores import caption_scores, relations_on_truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--prefix", default="", help="caption prefix ('' = none, the bundle's default off)")
    parser.add_argument("--num", type=int, default=512, help="val scenes (default: 512)")
    parser.add_argument("--start", type=int, default=256, help="first val scene (default: 256)")
    args = parser.parse_args()
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe, start=args.start)
    captions: list[str] = []
    for b, start in enumerate(range(0, args.num, 64)):
        chunk = samples[start : start + 64]
        conditions = given_conditions(pipe, {"rgb": [s["rgb"] for s in chunk]})
        result = pipe.generate(
            conditions, ["caption"], num_samples=len(chunk), seed=b, progress=False, caption_prefix=args.prefix
        )
        captions += result.values["caption"]
    scores = caption_scores(captions, samples)
    stated_vs_named = np.mean([parse_caption(c).count == len(parse_caption(c).objects) for c in captions])
    print(f"prefix {args.prefix!r}, scenes {args.start}..{args.start + args.num - 1}")
    for key in ("count_acc", "listed_count_acc", "color_recall", "shape_recall", "pair_f1", "exact"):
        print(f"  {key:20s} {scores[key]:.3f}")
    print(f"  {'stated = named':20s} {stated_vs_named:.3f}")
    print(f"  {'relations hold':20s} {relations_on_truth(captions, samples):.3f}")


if __name__ == "__main__":
    main()
