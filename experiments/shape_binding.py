"""Does a bundle draw the shape a caption names? Teacher-forced probe on world val scenes: with c the
caption, x the scene's rgb tokens (all masked, the first MaskGIT step) and c' the caption with every
word of one kind replaced by another of its kind (each shape by the next shape, or each colour by the
next colour, as a control), the binding margin is

    log p(x | c) - log p(x | c')      (nats, summed over the 64 rgb tokens)

A model that binds the words has positive margins in (nearly) every scene; one that ignores them is at
chance. Also the same margin for the scene's semseg tokens (whose classes are the shapes) and its
boxes (caption -> bboxes). Round 18 of issue 16
(docs/experiments/default_model.md).

    python experiments/shape_binding.py --model runs/r18_rgb_only/bundle [--num 256]
"""

from __future__ import annotations

import argparse
import re
import warnings

import numpy as np
import torch

from fourm.data.world.palette import CLASS_NAMES, COLORS
from fourm.eval.world import caption_margin, load_eval_pipeline, load_samples

SHAPES = [c for c in CLASS_NAMES if c != "background"]


def cycle_words(text: str, words: list[str]) -> str:
    """``text`` with each of ``words`` replaced by the next one in the list (one pass)."""
    nxt = {w: words[(i + 1) % len(words)] for i, w in enumerate(words)}
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")s?\b")
    return pattern.sub(lambda m: m.group(0).replace(m.group(1), nxt[m.group(1)]), text)


def margins(pipe, samples: list[dict], words: list[str], batch: int = 32) -> dict[str, np.ndarray]:
    """Per scene: log p(x | c) - log p(x | c') for the rgb and semseg tokens and the boxes (nats)."""
    sos = pipe.codec("caption").sos
    out: dict[str, list] = {"rgb": [], "semseg": [], "boxes": []}
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            captions = [s["caption"].lower() for s in chunk]
            swapped = [cycle_words(c, words) for c in captions]
            for key, name, start_id, values in (
                ("rgb", "rgb", 0, [s["rgb"] for s in chunk]),
                ("semseg", "semseg", 0, [s["semseg"] for s in chunk]),
                ("boxes", "bboxes", sos, [s["bboxes"] for s in chunk]),
            ):
                out[key] += caption_margin(pipe, name, values, captions, swapped, start_id).tolist()
    return {k: np.array(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--num", type=int, default=256, help="val scenes (default: 256)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe)
    print(f"{'words swapped':<15}{'probe':<18}{'scenes':>7}{'margin > 0':>12}{'mean margin':>13}")
    for kind, words in (("shape", SHAPES), ("colour", list(COLORS))):
        for key, m in margins(pipe, samples, words).items():
            probe = {"rgb": "caption -> rgb", "semseg": "caption -> semseg", "boxes": "caption -> boxes"}[key]
            print(f"{kind:<15}{probe:<18}{len(m):>7}{(m > 0).mean():>12.3f}{m.mean():>13.2f}")


if __name__ == "__main__":
    main()
