"""Where does a bundle lose the shapes it draws? The checker (shape accuracy among found objects, and
the score) on rgb drawn from more and more of the truth, world val scenes:

    tokenizer           the scene's own rgb tokens, decoded (the eval's tokenizer ceiling)
    pixels -> rgb       the model reads the image (as pixel patches) and writes its rgb tokens (greedy)
    + semseg, boxes     caption + the true boxes + the true semseg tokens -> rgb (the bundle's defaults)
    chain               caption -> boxes -> rgb (as bench/eval_world.py)

and, for the first two, how many of the tokens on object patches (any non-background semseg pixel)
and on ground patches the model gets exactly right; then each drawing's object tokens alone in the
true ground, and its ground tokens alone around the true objects. Round 18 of issue 16
(docs/experiments/default_model.md).

    python experiments/drawing_ceiling.py [--model BUNDLE] [--num 128]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from fourm.eval.world import given_conditions, load_eval_pipeline, load_samples
from fourm.eval.world_scores import checker_scores

KEYS = ("score", "presence", "shape_acc", "size_acc", "relation_acc")


def draw(pipe, samples: list[dict], conditions: tuple[str, ...], batch: int, **fields) -> torch.Tensor:
    """(N, L) rgb tokens drawn from the samples' true ``conditions``."""
    target = pipe.default_target("rgb", **fields)
    out = []
    for b, start in enumerate(range(0, len(samples), batch)):
        chunk = samples[start : start + batch]
        conds = given_conditions(pipe, {c: [s[c] for s in chunk] for c in conditions})
        res = pipe.generate(conds, [target], num_samples=len(chunk), seed=b, progress=False)
        out.append(res.tokens["rgb"])
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--num", type=int, default=128, help="val scenes (default: 128)")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe)
    captions = [s["caption"] for s in samples]
    images = [s["rgb"] for s in samples]
    truth = torch.cat([pipe.tokenize("rgb", images[i : i + args.batch]) for i in range(0, len(images), args.batch)])
    seg = torch.from_numpy(np.stack([np.asarray(s["semseg"]) for s in samples])).long()
    obj = (~pipe.codec("rgb").tokenizer.ground_patches(seg)).reshape(len(samples), -1).numpy()  # any object pixel

    def decode(tokens: torch.Tensor) -> list:
        return [x for i in range(0, len(tokens), args.batch) for x in pipe.detokenize("rgb", tokens[i : i + args.batch])]

    runs = {
        "tokenizer": truth,
        "pixels -> rgb (greedy)": draw(pipe, samples, ("rgb",), args.batch, temperature=0.0, guidance_scale=1.0),
        "caption + boxes + semseg -> rgb": draw(pipe, samples, ("caption", "bboxes", "semseg"), args.batch),
        "caption + boxes -> rgb": draw(pipe, samples, ("caption", "bboxes"), args.batch),
    }
    print(f"{'rgb drawn from':<34}{'object tokens':>14}{'ground tokens':>14}" + "".join(f"{k:>13}" for k in KEYS))
    mask = torch.from_numpy(obj)
    for i, (name, tokens) in enumerate(runs.items()):
        same = (tokens == truth).numpy()
        s = checker_scores(decode(tokens), captions)
        row = f"{name:<34}{same[obj].mean():>14.3f}{same[~obj].mean():>14.3f}"
        print(row + "".join(f"{s[k]:>13.3f}" for k in KEYS), flush=True)
        if i == 0:
            continue
        # which tokens lose the shapes: its object tokens in the true ground, its ground around the true objects
        for part, mixed in (("objects", torch.where(mask, tokens, truth)), ("ground", torch.where(mask, truth, tokens))):
            s = checker_scores(decode(mixed), captions)
            print(f"{'  its ' + part + ' only':<62}" + "".join(f"{s[k]:>13.3f}" for k in KEYS), flush=True)

if __name__ == "__main__":
    main()
