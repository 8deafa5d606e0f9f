"""The diffusion route of the continuous-targets run at several DDIM step counts: mean cosine of the
sampled caption vector (from the caption) to the true MiniLM vector, 256 held-out samples, and the
spread of two draws with different seeds (cos between them).

    python experiments/continuous_targets/diffusion_steps.py --model /tmp/ct/run_v/model --tokens /tmp/ct/tokens \
        --steps 1 5 10 20 50 --out /tmp/ct/run_v/diffusion_steps.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from fourm.data.token_dataset import TokenSamples, load_token_dataset
from fourm.model.fourm import FourM
from fourm.retrieval import RegressedEmbedder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--num", type=int, default=256)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10, 20, 50])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    model = FourM.from_pretrained(args.model).eval()
    dsd, _ = load_token_dataset(args.tokens)
    val = TokenSamples(dsd["val"], ["caption", "caption_vector"])
    rows = [val[i] for i in range(min(args.num, len(val)))]
    true = F.normalize(torch.stack([r["caption_vector"] for r in rows]), dim=-1)
    items = [{"caption": r["caption"]} for r in rows]
    head = model.value_heads["caption_vector_dh"]
    result: dict = {"num": len(rows), "diffusion head": f"{head.prediction_type}, {head.schedule}"}
    for steps in args.steps:
        start = time.perf_counter()
        a = RegressedEmbedder(model, "caption_vector_dh", steps=steps, seed=0, batch_size=64)(items)
        seconds = time.perf_counter() - start
        b = RegressedEmbedder(model, "caption_vector_dh", steps=steps, seed=1, batch_size=64)(items)
        result[f"DDIM {steps}"] = {
            "caption->vector cos": float((a * true).sum(-1).mean()),
            "cos between two seeds": float((a * b).sum(-1).mean()),
            "seconds": round(seconds, 2),
        }
        print(steps, result[f"DDIM {steps}"], flush=True)
    with open(args.out, "w") as f:
        f.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
