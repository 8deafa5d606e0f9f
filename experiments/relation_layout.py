"""Where do the caption's relations get lost when a bundle draws rgb from a caption? (issue 16, round 20)

Draws caption -> rgb for val scenes (bench/eval_world.py's scenes and sampling) and splits the checker's
relation accuracy into: relations between two objects both found in the drawing (vs 0.5 for a layout that
ignores the relation), relations with an endpoint missing (failures by construction), and a lone object's
position phrase (3 x 3 regions).

    python experiments/relation_layout.py --model models/world-default --num 128
"""

from __future__ import annotations

import argparse

import numpy as np

from fourm.eval.captions import parse_caption
from fourm.eval.rgb_checker import check_rgb
from fourm.eval.world import given, load_eval_pipeline, load_samples, parse_generation_settings

FLIP = {"left": "right", "right": "left", "above": "below", "below": "above"}


def flipped(caption: str) -> str:
    """``caption`` with every left/right/above/below word replaced by its opposite."""
    return " ".join(FLIP.get(w, w) for w in caption.lower().split(" "))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/world-default")
    p.add_argument("--num", type=int, default=128)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="MODALITY.FIELD=VALUE")
    p.add_argument("--negative-flipped", action="store_true", help="the caption with its relations flipped as a negative prompt")
    args = p.parse_args()
    pipe = load_eval_pipeline(args.model, settings=parse_generation_settings(args.set))
    samples = load_samples(None, args.num, "val", pipe, args.start, None)
    drawn = []
    for b, start in enumerate(range(0, len(samples), 64)):  # batches and seeds as bench/eval_world.py
        chunk = samples[start : start + 64]
        negative = {"caption": given(pipe, "caption", [flipped(s["caption"]) for s in chunk])} if args.negative_flipped else None
        result = pipe.generate({"caption": given(pipe, "caption", [s["caption"] for s in chunk])}, [pipe.default_target("rgb")],
                               num_samples=len(chunk), seed=args.seed + b, progress=False, negative=negative)  # fmt: skip
        drawn += result.values["rgb"]
    both, missing, lone, truth, scores = [], 0, [], [], []
    for img, s in zip(drawn, samples):
        parsed = parse_caption(s["caption"])
        check = check_rgb(np.asarray(img), parsed)
        scores.append(check.scores())
        true_check = check_rgb(np.asarray(s["rgb"]), parsed)
        truth += [r.ok for r in true_check.relations if r.ok is not None]
        by_key = {(o.color, o.shape): o for o in check.objects}
        for rel, res in zip(parsed.relations, check.relations):  # the same order; a position check comes last
            if rel.relation in ("in front of", "behind"):  # unverifiable without a depth map
                continue
            a, b = by_key.get(rel.subject), by_key.get(rel.object)
            if a is not None and b is not None and a.found and b.found:
                both.append(bool(res.ok))
            else:
                missing += 1
        lone += [bool(r.ok) for r in check.relations if r.text.startswith("position")]
    total = len(both) + missing
    print(f"{args.model}: {args.num} val scenes from {args.start}; {' '.join(args.set) or 'default sampling'}"
          f"{'; negative: relations flipped' if args.negative_flipped else ''}")
    mean = {k: float(np.nanmean([sc[k] for sc in scores])) for k in ("score", "presence", "shape_acc", "relation_acc")}
    print("checker: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    print(f"left/right/above/below relations: {total}; both endpoints drawn {len(both)} ({len(both) / max(total, 1):.2f})")
    print(f"  hold when both drawn: {np.mean(both):.3f} (a layout that ignores the relation: 0.5)")
    print(f"  overall (missing endpoint = fail): {np.sum(both) / max(total, 1):.3f}")
    print(f"lone object's position phrase: {len(lone)} scenes, right region {np.mean(lone) if lone else float('nan'):.3f}")
    print(f"relations on the true images: {np.mean(truth):.3f}")


if __name__ == "__main__":
    main()
