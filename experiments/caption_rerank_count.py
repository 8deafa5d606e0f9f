"""Can a score the model computes pick, among sampled rgb -> captions, the one that counts right?
Greedy plus K sampled captions per scene, each scored by log p(caption | image) (own), log p(rgb tokens |
caption) (rgb) and log p(boxes drawn from the image | caption) (boxes); the count accuracy of each
choice, of the drawn boxes themselves and of an oracle. Round 16 of issue 16
(docs/experiments/default_model.md).

    python experiments/caption_rerank_count.py [--model B] [--num 128] [--k 8] [--temperature 0.7]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from fourm.eval.captions import parse_caption
from fourm.eval.world import given, given_conditions, load_eval_pipeline, load_samples
from fourm.generation.rerank import log_likelihood


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--num", type=int, default=128, help="val scenes from scene 0 (default: 128)")
    parser.add_argument("--k", type=int, default=8, help="sampled captions besides the greedy one (default: 8)")
    parser.add_argument("--temperature", type=float, default=0.7, help="of the sampled captions (default: 0.7)")
    parser.add_argument("--prefix", default="", help="caption prefix of every draw (default: none)")
    args = parser.parse_args()
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe)
    sos = pipe.codec("caption").sos
    right: dict[str, list[bool]] = {k: [] for k in ("greedy", "own", "rgb", "boxes", "own+rgb", "boxes alone", "oracle")}
    for start in range(0, args.num, 64):
        chunk = samples[start : start + 64]
        images = [s["rgb"] for s in chunk]
        conditions = given_conditions(pipe, {"rgb": images})
        rgb_tokens = given(pipe, "rgb", images)
        one_box_draw = replace(pipe.default_target("bboxes"), candidates=1)
        boxes = pipe.generate(conditions, [one_box_draw], num_samples=len(chunk), seed=7 + start, progress=False)
        box_tokens = given(pipe, "bboxes", boxes.values["bboxes"])
        greedy = pipe.default_target("caption", prefix=None)
        drafts, scores = [], {"own": [], "rgb": [], "boxes": []}
        for k in range(args.k + 1):
            target = greedy if k == 0 else replace(greedy, temperature=args.temperature)
            captions = pipe.generate(
                conditions, [target], num_samples=len(chunk), seed=1000 * k + start, progress=False, caption_prefix=args.prefix
            ).values["caption"]
            tokens = given(pipe, "caption", captions)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                scores["own"].append(log_likelihood(pipe.model, dict(conditions), "caption", tokens, sos).float())
                scores["rgb"].append(log_likelihood(pipe.model, {"caption": tokens}, "rgb", rgb_tokens, sos).float())
                scores["boxes"].append(log_likelihood(pipe.model, {"caption": tokens}, "bboxes", box_tokens, sos).float())
            drafts.append(captions)
        table = {name: torch.stack(rows) for name, rows in scores.items()}  # (K + 1, B)
        table["own+rgb"] = table["own"] + table["rgb"]
        for i, sample in enumerate(chunk):
            truth = len(parse_caption(sample["caption"]).objects)
            counts = [parse_caption(d[i]).count for d in drafts]
            right["greedy"].append(counts[0] == truth)
            for name in ("own", "rgb", "boxes", "own+rgb"):
                right[name].append(counts[int(table[name][:, i].argmax())] == truth)
            right["boxes alone"].append(len(boxes.values["bboxes"][i]) == truth)
            right["oracle"].append(truth in counts)
    for name, hits in right.items():
        print(f"{name:12s} count acc {np.mean(hits):.3f}")


if __name__ == "__main__":
    main()
