"""Benchmark: how learnable is the caption_embedding target from the caption, outside FourM?

    python bench/caption_embedding_probe.py [--data data/world_model_ce] [--tokenizer runs/tok/caption_embedding]

The fine-tuning example asks FourM to predict, from a caption (or an image), the 4 tokens a vector
tokenizer gives the caption's MiniLM embedding. This fits two linear models on the caption's bag of
words and word bigrams (train split) and scores them on the val split:

* ridge regression straight to the 384-d vector (mean cosine to the true vector);
* per-position logistic regression to the 4 tokens (Adam, ``--steps`` steps of ``--batch`` captions):
  cross-entropy per token against uniform, and the mean cosine of the expected-code decoding, the
  number ``bench/retrieval_world.py`` prints for FourM's own prediction ("mean cosine to the true
  embedding, from caption").

Also printed: the cosine a constant prediction reaches (the normalised train mean). If a linear model
on words gets far closer than FourM does, the target is learnable and the model under-learns it.
With ``--bundle`` (default: the worked example's, when it exists) the same two linear models are also
fitted on the fine-tuned FourM encoder's mean-pooled output for the caption (``--encoder-samples``
train captions): what a linear readout of the model's own caption representation reaches.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fourm.data.raw_dataset import load_raw_dataset
from fourm.utils.atomic import atomic_write_text


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def vocabulary(captions: list[str]) -> dict:
    """Feature index of every word and word bigram of ``captions``."""
    index: dict = {}
    for text in captions:
        ws = words(text)
        for key in [*ws, *zip(ws, ws[1:])]:
            index.setdefault(key, len(index))
    return index


def features(captions: list[str], index: dict) -> torch.Tensor:
    """Counts (N, F) of the known words and bigrams, plus a constant 1 column."""
    x = torch.zeros(len(captions), len(index) + 1)
    x[:, -1] = 1.0
    for i, text in enumerate(captions):
        ws = words(text)
        for key in [*ws, *zip(ws, ws[1:])]:
            j = index.get(key)
            if j is not None:
                x[i, j] += 1.0
    return x


def fit_ridge(x: torch.Tensor, y: torch.Tensor, ridge: float = 1.0) -> torch.Tensor:
    """Weights (F, D) of ridge regression of y on x."""
    return torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1]), x.T @ y)


def fit_logistic(x: torch.Tensor, codes: torch.Tensor, codebook: int, steps: int, batch: int, seed: int) -> torch.nn.Linear:
    """Per-position softmax regression (F -> L x codebook) of ``codes`` (N, L) on ``x``."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    length = codes.shape[1]
    model = torch.nn.Linear(x.shape[1], length * codebook)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        rows = torch.randint(len(x), (batch,), generator=generator)
        logits = model(x[rows]).view(-1, codebook)
        loss = F.cross_entropy(logits, codes[rows].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def encoder_features(bundle: str, splits: dict, num_train: int) -> dict[str, torch.Tensor]:
    """Mean-pooled encoder output (N, D) of each split's captions (train: the first ``num_train``)."""
    from fourm.retrieval.settings import RetrievalSettings, load_pipeline, make_embedder

    pipe = load_pipeline(bundle)
    embedder = make_embedder(pipe, RetrievalSettings(method="pooled", align=False, center=False, normalize=False))
    out = {}
    for split, (captions, _) in splits.items():
        captions = captions[:num_train] if split == "train" else captions
        out[split] = embedder([{"caption": ids} for ids in pipe.tokenize("caption", captions)], progress=True)
    return out


def linear_scores(x_tr, y_tr, c_tr, x_va, y_va, c_va, tok, args) -> dict[str, float]:
    """Ridge cosine, logistic token cross-entropy and expected-code cosine of features x -> target."""
    codebook = int(tok.cfg.codebook_size)
    out = {"ridge_cosine": float(F.cosine_similarity(x_va @ fit_ridge(x_tr, y_tr), y_va).mean())}
    model = fit_logistic(x_tr, c_tr, codebook, args.steps, args.batch, args.seed)
    with torch.no_grad():
        logits = model(x_va).view(len(x_va), -1, codebook)
        out["logistic_token_ce"] = float(F.cross_entropy(logits.reshape(-1, codebook), c_va.reshape(-1)))
        out["logistic_expected_cosine"] = float(F.cosine_similarity(tok.decode_probs(logits.softmax(dim=-1)), y_va).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/world_model_ce", help="raw dataset with caption and caption_embedding")
    p.add_argument("--tokenizer", default="runs/tok/caption_embedding", help="the vector tokenizer of the target")
    p.add_argument("--key", default="caption_embedding")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bundle", default="runs/finetune_ce/bundle", help="fine-tuned bundle (skipped if absent)")
    p.add_argument("--encoder-samples", type=int, default=6000, help="train captions encoded for the encoder probe")
    p.add_argument("--json", default="runs/caption_embedding_probe.json")
    args = p.parse_args(argv)
    from tokenizers_zoo.vector import VectorTokenizer

    t0 = time.perf_counter()
    dataset = load_raw_dataset(args.data)
    splits = {}
    for split in ("train", "val"):
        part = dataset[split].select_columns(["caption", args.key])
        splits[split] = (part["caption"], torch.tensor(part[args.key]).float())
    index = vocabulary(splits["train"][0])
    (x_tr, y_tr), (x_va, y_va) = ((features(c, index), y) for c, y in (splits["train"], splits["val"]))
    print(f"{args.data}: {len(x_tr)} train / {len(x_va)} val captions, {len(index)} word + bigram features")

    mean = F.normalize(y_tr.mean(dim=0), dim=0)
    report: dict = {"data": args.data, "features": len(index), "constant_cosine": float((y_va @ mean).mean())}
    tok = VectorTokenizer.from_pretrained(args.tokenizer).eval()
    with torch.no_grad():
        c_tr, c_va = (tok.encode(y) - tok.token_offsets for y in (y_tr, y_va))
        report["tokenizer_cosine"] = float(F.cosine_similarity(tok.decode(c_va + tok.token_offsets), y_va).mean())
    report["uniform_token_ce"] = float(torch.log(torch.tensor(float(tok.cfg.codebook_size))))
    report.update(linear_scores(x_tr, y_tr, c_tr, x_va, y_va, c_va, tok, args))
    if Path(args.bundle, "model", "model.safetensors").is_file():
        feats = encoder_features(args.bundle, splits, args.encoder_samples)
        mu, sd = feats["train"].mean(dim=0), feats["train"].std(dim=0) + 1e-6
        e_tr, e_va = (torch.cat([(f - mu) / sd, torch.ones(len(f), 1)], dim=1) for f in (feats["train"], feats["val"]))
        n = len(e_tr)
        report["encoder"] = {"bundle": args.bundle, "train_captions": n,
                             **linear_scores(e_tr, y_tr[:n], c_tr[:n], e_va, y_va, c_va, tok, args)}
    report["seconds"] = time.perf_counter() - t0

    print(f"mean cosine to the true vector (val): constant (train mean) {report['constant_cosine']:.3f}, "
          f"ridge on words {report['ridge_cosine']:.3f}, logistic on words -> tokens -> expected codes "
          f"{report['logistic_expected_cosine']:.3f} (the tokenizer's own encode/decode {report['tokenizer_cosine']:.3f})")
    print(f"token cross-entropy (val): logistic on words {report['logistic_token_ce']:.3f}, "
          f"uniform {report['uniform_token_ce']:.3f}  ({report['seconds']:.0f} s)")
    if "encoder" in report:
        e = report["encoder"]
        print(f"on the fine-tuned encoder's mean-pooled caption output ({e['train_captions']} train captions): "
              f"ridge {e['ridge_cosine']:.3f}, logistic -> expected codes {e['logistic_expected_cosine']:.3f}, "
              f"token cross-entropy {e['logistic_token_ce']:.3f}")
    atomic_write_text(Path(args.json), json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
