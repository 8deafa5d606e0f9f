"""Where rgb -> depth goes wrong, and what combining several draws gives.

For ``--num`` world val scenes from ``--start`` (default 1000: not the eval's reported scenes), the
bundle draws ``--draws`` depth maps per scene (its defaults, different seeds) and one greedy map, and
prints abs_rel (the eval's figure) on all pixels, on the ground and on the objects for: one draw,
the pixelwise median and mean of the draws, and greedy decoding; then two references: the depth
tokenizer on the truth (its ceiling), and the truth on the ground with every object pixel at the
objects' median depth (a model that knows the ground and nothing of the objects' distances).

    python experiments/depth_errors.py --model runs/default/bundle --num 64 --draws 8
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fourm.eval.world import given_conditions, load_eval_pipeline, load_samples, roundtrip


def abs_rel(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> float:
    """mean |p - t| / t over ``mask`` (pooled over every scene)."""
    return float((np.abs(pred - true)[mask] / true[mask]).mean())


def report(name: str, preds: np.ndarray, true: np.ndarray, objects: np.ndarray) -> None:
    everything = np.ones_like(objects)
    print(
        f"{name:<28} all {abs_rel(preds, true, everything):.4f}  ground {abs_rel(preds, true, ~objects):.4f}"
        f"  objects {abs_rel(preds, true, objects):.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--start", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe, args.start)
    true = np.stack([s["depth"] for s in samples])  # (N, H, W)
    objects = np.stack([s["semseg"] for s in samples]) != 0
    print(f"{args.num} scenes, object pixels {objects.mean():.3f}")

    def draw(seed: int, **overrides) -> np.ndarray:
        out = []
        for b, start in enumerate(range(0, len(samples), args.batch)):
            chunk = samples[start : start + args.batch]
            conds = given_conditions(pipe, {"rgb": [s["rgb"] for s in chunk]})
            target = pipe.default_target("depth", **overrides)
            result = pipe.generate(conds, [target], num_samples=len(chunk), seed=seed * 1000 + b, progress=False)
            out += result.values["depth"]
        return np.stack(out)

    torch.manual_seed(0)
    draws = np.stack([draw(seed) for seed in range(args.draws)])  # (K, N, H, W)
    report("one draw (mean over draws)", draws, true[None].repeat(args.draws, 0), objects[None].repeat(args.draws, 0))
    report(f"median of {args.draws} draws", np.median(draws, axis=0), true, objects)
    report(f"mean of {args.draws} draws", draws.mean(axis=0), true, objects)
    report("greedy (temperature 0)", draw(0, temperature=0.0, temperature_end=0.0), true, objects)
    ceiling = np.stack(roundtrip(pipe, "depth", list(true), args.batch, 0))
    report("tokenizer on the truth", ceiling, true, objects)
    constant = np.where(objects, np.median(true[objects]), true)
    report("truth, objects at a constant", constant, true, objects)


if __name__ == "__main__":
    main()
