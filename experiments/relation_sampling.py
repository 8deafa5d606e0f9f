"""Do sampled boxes follow the caption's words about where things are? For absolute positions (one
object "on the left of the image") the mean box centre; for relations between two objects ("a small red
circle is to the left of a large blue square") the share of samples whose first box (the first object
named) lies on the stated side of the second, by box centres. One draw per sample (no reranking).
Round 16 of issue 16 (docs/experiments/default_model.md).

    python experiments/relation_sampling.py [--model B] [--samples 32]
"""

from __future__ import annotations

import argparse

import numpy as np

from fourm.generation.pipeline import FourMPipeline

PAIRS = [("small red circle", "large blue square"), ("large green star", "small yellow hexagon"),
         ("small purple triangle", "small orange circle"), ("large cyan hexagon", "large pink star")]  # fmt: skip
RELATIONS = {  # words -> (axis: 0 = x, 1 = y; True if the first box's centre is the smaller)
    "to the left of": (0, True), "to the right of": (0, False), "above": (1, True), "below": (1, False),
}  # fmt: skip
ABSOLUTE = {"on the left of the image": (0, 0.5, True), "on the right of the image": (0, 0.5, False),
            "at the top of the image": (1, 0.5, True), "at the bottom of the image": (1, 0.5, False)}  # fmt: skip


def centre(box: dict, axis: int) -> float:
    b = box["box"]  # [x0, y0, x1, y1] in [0, 1]
    return (b[axis] + b[axis + 2]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--samples", type=int, default=32, help="samples per caption (default: 32)")
    args = parser.parse_args()
    pipe = FourMPipeline.from_pretrained(args.model) if args.model else FourMPipeline.from_pretrained()
    target = pipe.default_target("bboxes", candidates=1)

    def boxes(caption: str, seed: int) -> list[list[dict]]:
        return pipe.generate({"caption": caption}, [target], num_samples=args.samples, seed=seed, progress=False).values["bboxes"]

    held = []
    for words, (axis, half, low) in ABSOLUTE.items():
        rows = [b for b in boxes(f"a small red circle {words}.", 0) if b]
        ok = np.mean([(centre(b[0], axis) < half) == low for b in rows])
        held.append(ok)
        print(f"absolute  {words:28s} on the stated half {ok:.2f} (of {len(rows)})")
    print(f"absolute  mean {np.mean(held):.3f}")
    held = []
    for words, (axis, first_smaller) in RELATIONS.items():
        rates = []
        for k, (a, b) in enumerate(PAIRS):
            rows = [x for x in boxes(f"a {a} is {words} a {b}.", k) if len(x) >= 2]
            rates.append(np.mean([(centre(x[0], axis) < centre(x[1], axis)) == first_smaller for x in rows]))
        held.append(np.mean(rates))
        print(f"relation  {words:28s} holds {np.mean(rates):.2f} (per pair {', '.join(f'{r:.2f}' for r in rates)})")
    print(f"relation  mean {np.mean(held):.3f} (0.5: the words are ignored)")


if __name__ == "__main__":
    main()
