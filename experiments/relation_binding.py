"""Does a bundle put objects where the caption's relations say? Teacher-forced probes on world val
scenes whose caption states a left/right (or above/below) relation. With c the caption, c' the caption
with those relation words swapped ("left of" <-> "right of"), x the scene's boxes (or rgb tokens) and
x' the same mirrored (x -> 1 - x; y -> 1 - y; the image flipped left to right), the binding margin is

    [log p(x | c) - log p(x' | c)] - [log p(x | c') - log p(x' | c')]

(nats): how much more the true caption prefers the true layout than the swapped caption does, with
whatever the model thinks of mirrored scenes on their own cancelled out. Also in reverse, boxes ->
caption: log p(c | x) - log p(c' | x). A model that binds the relation words has positive margins in
(nearly) every scene; one that ignores them is at chance (half the scenes). Round 15 of issue 16
(docs/experiments/default_model.md).

    python experiments/relation_binding.py --model runs/r12_caption/bundle [--num 256]
"""

from __future__ import annotations

import argparse
import re
import warnings

import numpy as np
import torch

from fourm.eval.world import caption_margin, given, load_eval_pipeline, load_samples
from fourm.generation.rerank import log_likelihood

AXES = {  # axis -> (relation words and their opposites, mirror of one box [x0, y0, x1, y1], of an image or None)
    "left/right": (
        {"to the left of": "to the right of", "to the right of": "to the left of"},
        lambda b: [1 - b[2], b[1], 1 - b[0], b[3]],
        lambda image: np.ascontiguousarray(image[:, ::-1]),
    ),
    # no image probe: objects stand on the ground, so an upside-down scene is unlike any other
    "above/below": ({"above": "below", "below": "above"}, lambda b: [b[0], 1 - b[3], b[2], 1 - b[1]], None),
}


def swap_words(text: str, swap: dict[str, str]) -> str:
    """``text`` with every relation word of ``swap`` replaced by its opposite (one pass)."""
    pattern = re.compile("|".join(re.escape(w) for w in sorted(swap, key=len, reverse=True)))
    return pattern.sub(lambda m: swap[m.group(0)], text)


def binding(pipe, samples: list[dict], swap: dict, mirror, flip_image, batch: int = 32) -> dict[str, np.ndarray]:
    """Per scene (nats): the boxes' and (with ``flip_image``) the rgb tokens' binding margins, and the
    reverse margin log p(c | boxes) - log p(c' | boxes)."""
    sos = pipe.codec("caption").sos
    out: dict[str, list] = {"boxes": [], "caption": [], "rgb": []}
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            captions = [s["caption"].lower() for s in chunk]
            swapped = [swap_words(c, swap) for c in captions]
            boxes = [s["bboxes"] for s in chunk]
            targets = {
                "boxes": ("bboxes", sos, boxes, [[{"label": b["label"], "box": mirror(b["box"])} for b in bs] for bs in boxes]),
            }
            if flip_image is not None:
                images = [s["rgb"] for s in chunk]
                targets["rgb"] = ("rgb", 0, images, [flip_image(i) for i in images])
            for key, (name, start_id, true, mirrored) in targets.items():
                margin = [caption_margin(pipe, name, v, captions, swapped, start_id) for v in (true, mirrored)]
                out[key] += (margin[0] - margin[1]).tolist()  # [lp(x|c) - lp(x|c')] - [lp(x'|c) - lp(x'|c')]
            cond = {"bboxes": given(pipe, "bboxes", boxes)}
            true = log_likelihood(pipe.model, cond, "caption", given(pipe, "caption", captions), sos)
            other = log_likelihood(pipe.model, cond, "caption", given(pipe, "caption", swapped), sos)
            out["caption"] += (true - other).tolist()
    return {k: np.array(v) for k, v in out.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--num", type=int, default=256, help="val scenes to draw from (default: 256)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe)
    print(f"{'relations':<12}{'probe':<18}{'scenes':>7}{'margin > 0':>12}{'mean margin':>13}")
    for axis, (swap, mirror, flip_image) in AXES.items():
        chosen = [s for s in samples if any(w in s["caption"].lower() for w in swap)]
        for key, margin in binding(pipe, chosen, swap, mirror, flip_image).items():
            probe = {"boxes": "caption -> boxes", "rgb": "caption -> rgb", "caption": "boxes -> caption"}[key]
            print(f"{axis:<12}{probe:<18}{len(margin):>7}{(margin > 0).mean():>12.3f}{margin.mean():>13.2f}")


if __name__ == "__main__":
    main()
