"""Score the continuous-targets run on held-out samples: the caption's MiniLM vector predicted from
the caption (and from the rgb tokens) by (i) regression (caption_vector), (ii) the tokenized route
(caption_embedding tokens decoded by the vector tokenizer, expected decoding) and (iii) the
diffusion head (caption_vector_dh, DDIM); cosine to the true vector, chance levels, and image ->
caption retrieval against the true MiniLM vectors (recall@k; a hit is any caption with the same vector).

    python experiments/continuous_targets/evaluate.py --model /tmp/ct/run/model --tokens /tmp/ct/tokens \
        --tokenizer runs/default_stage/tokenizers/caption_embedding --out /tmp/ct/eval.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from fourm.data.token_dataset import TokenSamples, load_token_dataset
from fourm.model.fourm import FourM
from fourm.retrieval import PredictedEmbedder, RegressedEmbedder
from tokenizers_zoo.vector import VectorTokenizer


def recall(queries: torch.Tensor, keys: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """Query i's positive: every key whose vector equals key i's (duplicate captions count)."""
    same = (keys @ keys.T) > 0.9999  # (N, N)
    order = (queries @ keys.T).argsort(dim=1, descending=True)
    hits = same.gather(1, order)  # (N, N): is the r-th result a positive
    return {f"R@{k}": float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--num", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps of the diffusion head")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = FourM.from_pretrained(args.model).eval()
    tokenizer = VectorTokenizer.from_pretrained(args.tokenizer).eval()
    dsd, _ = load_token_dataset(args.tokens)
    val = TokenSamples(dsd["val"], ["rgb", "caption", "caption_vector"])
    rows = [val[i] for i in range(min(args.num, len(val)))]
    true = F.normalize(torch.stack([r["caption_vector"] for r in rows]), dim=-1)  # (N, 384)
    train = TokenSamples(dsd["train"], ["caption_vector"])
    mean_vec = F.normalize(
        torch.stack([train[i]["caption_vector"] for i in range(min(2000, len(train)))]).mean(0), dim=-1
    )
    routes = {
        "regressed (caption_vector, linear head, cosine)": RegressedEmbedder(
            model, "caption_vector", batch_size=64
        ),
        "tokenized (caption_embedding, 4 tokens, expected)": PredictedEmbedder(
            model, tokenizer, "caption_embedding", decoding="expected", batch_size=64
        ),
        f"diffusion (caption_vector_dh, DDIM {args.steps})": RegressedEmbedder(
            model, "caption_vector_dh", steps=args.steps, batch_size=64
        ),
    }
    head = model.value_heads["caption_vector_dh"]
    result: dict = {"num": len(rows), "diffusion head": f"{head.prediction_type}, {head.schedule}"}
    with torch.no_grad():
        ceiling = F.cosine_similarity(tokenizer.decode(tokenizer.encode(true)).float(), true).mean()
    result["chance: cos to another sample's vector"] = float((true * true.roll(1, 0)).sum(-1).mean())
    result["baseline: cos of the train mean vector"] = float((true @ mean_vec).mean())
    result["ceiling of the tokenized route: cos(decode(encode(v)), v)"] = float(ceiling)
    result["retrieval chance R@1"] = float(((true @ true.T) > 0.9999).float().sum(1).mean() / len(rows))
    for name, embedder in routes.items():
        out = {}
        for source in ("caption", "rgb"):
            items = [{source: r[source]} for r in rows]
            start = time.perf_counter()
            pred = embedder(items)
            out[f"{source}->vector seconds"] = round(time.perf_counter() - start, 2)
            out[f"{source}->vector cos"] = float((pred * true).sum(-1).mean())
            if source == "rgb":
                out.update({f"image->caption {k}": v for k, v in recall(pred, true).items()})
        result[name] = out
    text = json.dumps(result, indent=2)
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
