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
train captions; scored on the first ``--retrieval-num`` val samples): what a linear readout of the
model's own caption representation reaches; ``--encoder-views caption,rgb_pixels,rgb+rgb_pixels``
does the same for the image (as pixels, tokens + pixels), and ranks the val scenes by the ridge
predictions of both sides (caption <-> image recall@k): what a predicted embedding could reach
from what the encoder holds, if read out optimally by a linear map.
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


def encoder_features(bundle: str, data: str, view: list[str], num_train: int, num_val: int | None) -> dict:
    """Mean-pooled encoder output (N, D) of the ``view`` modalities of each split's samples (train: the
    first ``num_train``; val: the first ``num_val``, default all), and the rows they come from."""
    from fourm.retrieval.data import RetrievalData
    from fourm.retrieval.settings import RetrievalSettings, load_pipeline, make_embedder

    pipe = load_pipeline(bundle)
    embedder = make_embedder(pipe, RetrievalSettings(method="pooled", align=False, center=False, normalize=False))
    out = {}
    for split, num in (("train", num_train), ("val", num_val)):
        part = RetrievalData(data, split, num)
        items, rows = part.items(view, pipe, progress=True)
        out[split] = (embedder(items, progress=True), rows)
    return out


def ridge_retrieval(caption: torch.Tensor, image: torch.Tensor, view: str) -> dict:
    """Recall of caption -> image and image -> caption between the ridge predictions (N, D) of both sides."""
    from fourm.retrieval.evaluate import evaluate_pair, format_report

    out = {}
    for name, (a, b) in ((f"caption->{view}", (caption, image)), (f"{view}->caption", (image, caption))):
        out[name] = evaluate_pair(F.normalize(a, dim=-1), F.normalize(b, dim=-1))
        print("  " + format_report(name.replace("->", " -> ") + " (ridge)", out[name]), flush=True)
    return out


def linear_scores(x_tr, y_tr, c_tr, x_va, y_va, c_va, tok, args) -> tuple[dict[str, float], torch.Tensor]:
    """Ridge cosine, logistic token cross-entropy and expected-code cosine of features x -> target,
    and the ridge predictions (N_val, D) of the val features."""
    codebook = int(tok.cfg.codebook_size)
    ridge = x_va @ fit_ridge(x_tr, y_tr)
    out = {"ridge_cosine": float(F.cosine_similarity(ridge, y_va).mean())}
    model = fit_logistic(x_tr, c_tr, codebook, args.steps, args.batch, args.seed)
    with torch.no_grad():
        logits = model(x_va).view(len(x_va), -1, codebook)
        out["logistic_token_ce"] = float(F.cross_entropy(logits.reshape(-1, codebook), c_va.reshape(-1)))
        out["logistic_expected_cosine"] = float(F.cosine_similarity(tok.decode_probs(logits.softmax(dim=-1)), y_va).mean())
    return out, ridge


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/world_model_ce", help="raw dataset with caption and caption_embedding")
    p.add_argument("--tokenizer", default="runs/tok/caption_embedding", help="the vector tokenizer of the target")
    p.add_argument("--key", default="caption_embedding")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bundle", default="runs/finetune_ce/bundle", help="fine-tuned bundle (skipped if absent)")
    p.add_argument("--encoder-samples", type=int, default=6000, help="train samples encoded for the encoder probe")
    p.add_argument("--encoder-views", default="caption",
                   help="encoder probe inputs, e.g. caption,rgb_pixels,rgb+rgb_pixels (images: from the raw rgb)")
    p.add_argument("--retrieval-num", type=int, default=500,
                   help="val samples of the encoder probe (the first N, as bench/retrieval_world.py)")
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
    report.update(linear_scores(x_tr, y_tr, c_tr, x_va, y_va, c_va, tok, args)[0])
    if Path(args.bundle, "model", "model.safetensors").is_file():
        report["encoder"] = {"bundle": args.bundle, "views": {}}
        ridge_val: dict[str, torch.Tensor] = {}
        for view in [v.strip() for v in args.encoder_views.split(",") if v.strip()]:
            feats = encoder_features(args.bundle, args.data, view.split("+"), args.encoder_samples, args.retrieval_num)
            (f_tr, r_tr), (f_va, r_va) = feats["train"], feats["val"]
            mu, sd = f_tr.mean(dim=0), f_tr.std(dim=0) + 1e-6
            e_tr, e_va = (torch.cat([(f - mu) / sd, torch.ones(len(f), 1)], dim=1) for f in (f_tr, f_va))
            scores, ridge_val[view] = linear_scores(e_tr, y_tr[r_tr], c_tr[r_tr], e_va, y_va[r_va], c_va[r_va], tok, args)
            report["encoder"]["views"][view] = {"train": len(r_tr), "val": len(r_va), **scores}
            print(f"on the fine-tuned encoder's mean-pooled {view} output ({len(r_tr)} train samples): ridge "
                  f"{scores['ridge_cosine']:.3f}, logistic -> expected codes {scores['logistic_expected_cosine']:.3f}, "
                  f"token cross-entropy {scores['logistic_token_ce']:.3f}", flush=True)
        if "caption" in ridge_val:  # the ridge predictions as retrieval embeddings, caption vs each image view
            report["encoder"]["ridge_retrieval"] = {
                v: ridge_retrieval(ridge_val["caption"], e, v) for v, e in ridge_val.items() if v != "caption"
            }
    report["seconds"] = time.perf_counter() - t0

    print(f"mean cosine to the true vector (val): constant (train mean) {report['constant_cosine']:.3f}, "
          f"ridge on words {report['ridge_cosine']:.3f}, logistic on words -> tokens -> expected codes "
          f"{report['logistic_expected_cosine']:.3f} (the tokenizer's own encode/decode {report['tokenizer_cosine']:.3f})")
    print(f"token cross-entropy (val): logistic on words {report['logistic_token_ce']:.3f}, "
          f"uniform {report['uniform_token_ce']:.3f}  ({report['seconds']:.0f} s)")
    atomic_write_text(Path(args.json), json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
