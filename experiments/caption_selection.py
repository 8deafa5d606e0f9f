"""Can decoding find captions that count right? Round 13 of issue 16 (docs/experiments/default_model.md).

For each world val scene: the bundle's greedy rgb -> caption plus K captions sampled at a temperature
(all without the bundle's caption prefix unless ``--prefix`` gives one); then one caption per scene
picked seven ways (greedy; highest log p(caption | image), in total or per token; highest log p(image
tokens | caption), the reverse task; their sum; highest log p(boxes | caption) for one draw of boxes
from the image (round 16); the consensus caption, whose objects agree most with the other candidates'
(minimum Bayes risk)), each scored as the eval scores captions; the drawn boxes' own count accuracy;
and the oracle: the share of scenes where some candidate states the right count.

    python experiments/caption_selection.py [--model models/world-default] [--num 256] [--start 0] [--k 12]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm import tqdm

from fourm.eval.captions import caption_accuracy, parse_caption
from fourm.eval.world import given, given_conditions, load_eval_pipeline, load_samples
from fourm.generation import GivenTokens
from fourm.generation.rerank import log_likelihood

KEYS = ("count_acc", "color_recall", "shape_recall", "pair_f1", "exact")
BATCH = 64


def chunk_conditions(pipe, chunk: list[dict], start: int) -> tuple[dict, GivenTokens, list[list[dict]]]:
    """The model's inputs read from the scenes' images (as generation reads them), the images' rgb
    tokens (the reverse task's target) and one draw of boxes from each image (seed 7 + ``start``)."""
    images = [s["rgb"] for s in chunk]
    conds = given_conditions(pipe, {"rgb": images})
    one_draw = pipe.default_target("bboxes", candidates=1)
    boxes = pipe.generate(conds, [one_draw], len(chunk), seed=7 + start, progress=False).values["bboxes"]
    return conds, given(pipe, "rgb", images), boxes


def candidates(pipe, conds: dict, n: int, start: int, k: int, temperature: float, prefix: str) -> list[list[str]]:
    """Per scene of a chunk (n scenes from ``start``): [greedy caption, k sampled captions]."""
    greedy = pipe.default_target("caption", prefix=prefix)
    rows = [[c] for c in pipe.generate(conds, [greedy], n, seed=start, progress=False).values["caption"]]
    target = pipe.default_target("caption", temperature=temperature, prefix=prefix)
    for j in range(k):
        drawn = pipe.generate(conds, [target], n, seed=1000 * (j + 1) + start, progress=False)
        for row, caption in zip(rows, drawn.values["caption"]):
            row.append(caption)
    return rows


def likelihoods(pipe, conds: dict, rgb: GivenTokens, boxes: GivenTokens, rows: list[list[str]]) -> torch.Tensor:
    """(4, n, K + 1): forward log p(caption | rgb pixels), its token count, reverse log p(rgb tokens |
    caption), log p(boxes drawn from the image | caption)."""
    sos = pipe.codec("caption").sos
    pixels = {m: g for m, g in conds.items() if m != "rgb"}
    out = torch.zeros(4, len(rows), len(rows[0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for j in range(len(rows[0])):
            caption = given(pipe, "caption", [row[j] for row in rows])
            out[0, :, j] = log_likelihood(pipe.model, pixels, "caption", caption, sos).float()
            out[1, :, j] = caption.valid.sum(1).float()
            out[2, :, j] = log_likelihood(pipe.model, {"caption": caption}, "rgb", rgb, sos).float()
            out[3, :, j] = log_likelihood(pipe.model, {"caption": caption}, "bboxes", boxes, sos).float()
    return out


def consensus(row: list[str]) -> int:
    """Index of the caption whose (colour, shape) set agrees most (Jaccard) with the others'."""
    sets = [set(parse_caption(c).objects) for c in row]

    def jaccard(a: set, b: set) -> float:
        return len(a & b) / len(a | b) if a | b else 1.0

    return int(np.argmax([sum(jaccard(a, b) for j, b in enumerate(sets) if j != i) for i, a in enumerate(sets)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--num", type=int, default=256, help="val scenes (default: 256)")
    parser.add_argument("--start", type=int, default=0, help="first val scene (default: 0, the eval's)")
    parser.add_argument("--k", type=int, default=12, help="sampled captions per scene (default: 12)")
    parser.add_argument("--temperature", type=float, default=0.7, help="their temperature (default: 0.7)")
    parser.add_argument("--prefix", default=None, help="caption prefix of every candidate (default: none)")
    args = parser.parse_args()
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe, start=args.start)
    cands: list[list[str]] = []
    drawn: list[list[dict]] = []
    scores = []
    for start in tqdm(range(0, len(samples), BATCH), desc="scenes"):
        chunk = samples[start : start + BATCH]
        conds, rgb, boxes = chunk_conditions(pipe, chunk, start)
        rows = candidates(pipe, conds, len(chunk), start, args.k, args.temperature, args.prefix)
        scores.append(likelihoods(pipe, conds, rgb, given(pipe, "bboxes", boxes), rows))
        cands += rows
        drawn += boxes
    fwd, tokens, rev, box = torch.cat(scores, dim=1)
    picks = {
        "greedy": [0] * len(cands),
        "highest log p(caption | image)": fwd.argmax(1).tolist(),
        "highest mean log p per token": (fwd / tokens).argmax(1).tolist(),
        "highest log p(image | caption)": rev.argmax(1).tolist(),
        "highest log p(caption | image) + log p(image | caption)": (fwd + rev).argmax(1).tolist(),
        "highest log p(boxes drawn from the image | caption)": box.argmax(1).tolist(),
        "consensus (object sets)": [consensus(row) for row in cands],
    }
    truth = [s["caption"] for s in samples]
    print("| pick | " + " | ".join(KEYS) + " |")
    for name, index in picks.items():
        scores = [caption_accuracy(row[i], t) for row, i, t in zip(cands, index, truth)]
        print(f"| {name} | " + " | ".join(f"{np.nanmean([s[k] for s in scores]):.3f}" for k in KEYS) + " |")
    right = np.array([[caption_accuracy(c, t)["count_acc"] for c in row] for row, t in zip(cands, truth)])
    print(f"some candidate counts right: {right.max(1).mean():.3f}; a sampled one: {right[:, 1:].mean():.3f}")
    counted = [len(b) == len(parse_caption(t).objects) for b, t in zip(drawn, truth)]
    print(f"the drawn boxes count right: {np.mean(counted):.3f}")


if __name__ == "__main__":
    main()
