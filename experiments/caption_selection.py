"""Can decoding find captions that count right? Round 13 of issue 16 (docs/experiments/default_model.md).

For each world val scene: the bundle's greedy rgb -> caption plus K captions sampled at a temperature;
then one caption per scene picked five ways (greedy; highest log p(caption | image), in total or per
token; highest log p(image tokens | caption), the reverse task; the consensus caption, whose objects
agree most with the other candidates' (minimum Bayes risk)), each scored as the eval scores captions;
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


def chunk_conditions(pipe, chunk: list[dict]) -> tuple[dict, GivenTokens]:
    """The model's inputs read from the scenes' images (as generation reads them) and the images'
    rgb tokens (the reverse task's target)."""
    images = [s["rgb"] for s in chunk]
    return given_conditions(pipe, {"rgb": images}), given(pipe, "rgb", images)


def candidates(pipe, conds: dict, n: int, start: int, k: int, temperature: float) -> list[list[str]]:
    """Per scene of a chunk (n scenes from ``start``): [greedy caption, k sampled captions]."""
    rows = [[c] for c in pipe.generate(conds, ["caption"], n, seed=start, progress=False).values["caption"]]
    target = pipe.default_target("caption", temperature=temperature)
    for j in range(k):
        drawn = pipe.generate(conds, [target], n, seed=1000 * (j + 1) + start, progress=False)
        for row, caption in zip(rows, drawn.values["caption"]):
            row.append(caption)
    return rows


def likelihoods(pipe, conds: dict, rgb: GivenTokens, rows: list[list[str]]) -> torch.Tensor:
    """(3, n, K + 1): forward log p(caption | rgb pixels), its token count, reverse log p(rgb tokens | caption)."""
    sos = pipe.codec("caption").sos
    pixels = {m: g for m, g in conds.items() if m != "rgb"}
    out = torch.zeros(3, len(rows), len(rows[0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for j in range(len(rows[0])):
            caption = given(pipe, "caption", [row[j] for row in rows])
            out[0, :, j] = log_likelihood(pipe.model, pixels, "caption", caption, sos).float()
            out[1, :, j] = caption.valid.sum(1).float()
            out[2, :, j] = log_likelihood(pipe.model, {"caption": caption}, "rgb", rgb, sos).float()
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
    args = parser.parse_args()
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe, start=args.start)
    cands: list[list[str]] = []
    scores = []
    for start in tqdm(range(0, len(samples), BATCH), desc="scenes"):
        chunk = samples[start : start + BATCH]
        conds, rgb = chunk_conditions(pipe, chunk)
        rows = candidates(pipe, conds, len(chunk), start, args.k, args.temperature)
        scores.append(likelihoods(pipe, conds, rgb, rows))
        cands += rows
    fwd, tokens, rev = torch.cat(scores, dim=1)
    picks = {
        "greedy": [0] * len(cands),
        "highest log p(caption | image)": fwd.argmax(1).tolist(),
        "highest mean log p per token": (fwd / tokens).argmax(1).tolist(),
        "highest log p(image | caption)": rev.argmax(1).tolist(),
        "consensus (object sets)": [consensus(row) for row in cands],
    }
    truth = [s["caption"] for s in samples]
    print("| pick | " + " | ".join(KEYS) + " |")
    for name, index in picks.items():
        scores = [caption_accuracy(row[i], t) for row, i, t in zip(cands, index, truth)]
        print(f"| {name} | " + " | ".join(f"{np.nanmean([s[k] for s in scores]):.3f}" for k in KEYS) + " |")
    right = np.array([[caption_accuracy(c, t)["count_acc"] for c in row] for row, t in zip(cands, truth)])
    print(f"some candidate counts right: {right.max(1).mean():.3f}; a sampled one: {right[:, 1:].mean():.3f}")


if __name__ == "__main__":
    main()
