"""Is rgb -> semseg's shape error coherent (each object one wrong shape) or scattered (each object a
mix of shapes, patch by patch)? Round 7 of issue 16 (docs/experiments/default_model.md).

    python experiments/semseg_object_purity.py [--model models/world-default] [--num 128] [--set semseg.FIELD=V]

For every true object (the pixels of one true shape class in a scene) that the prediction covers with
foreground: the share of those pixels in the prediction's most common shape there (purity) and whether
that shape is the true one. High purity with a wrong majority: the model does not know the shape;
low purity: it names shapes patch by patch, inconsistently.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from tqdm.auto import tqdm

from fourm.eval.world import Generator, load_eval_pipeline, load_samples, parse_generation_settings


def object_purity(pred: np.ndarray, true: np.ndarray) -> list[tuple[float, bool, float]]:
    """(purity, majority right, share covered) of each true foreground class in ``true`` (H, W)."""
    out = []
    for c in np.unique(true):
        if c == 0:
            continue
        inside = pred[true == c]
        fg = inside[inside != 0]
        if fg.size == 0:
            continue
        counts = np.bincount(fg)
        out.append((counts.max() / fg.size, int(counts.argmax()) == int(c), fg.size / inside.size))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--num", type=int, default=128)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    pipe = load_eval_pipeline(args.model, settings=parse_generation_settings(args.set))
    samples = load_samples(None, args.num, "val", pipe, start=args.start)
    with tqdm(total=(args.num + 63) // 64, desc="rgb -> semseg") as bar:
        pred = Generator(pipe, samples, 64, 0, None, bar)(("rgb",), ("semseg",))["semseg"]
    rows = [r for p, s in zip(pred, samples) for r in object_purity(np.asarray(p), np.asarray(s["semseg"]))]
    purity, right, covered = (np.array([r[i] for r in rows], dtype=float) for i in range(3))
    print(json.dumps({
        "objects": len(rows), "purity": round(purity.mean(), 3), "majority_right": round(right.mean(), 3),
        "pure_objects(>=0.9)": round((purity >= 0.9).mean(), 3),
        "right_among_pure": round(right[purity >= 0.9].mean(), 3) if (purity >= 0.9).any() else None,
        "covered": round(covered.mean(), 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
