"""Benchmark: how readable is the scene content from rgb tokens, compared with the pixels they encode?

    python bench/rgb_semantics_probe.py [--tokens data/world_model_tokens] [--data data/world_model]

Trains the same small Transformer probe (3 layers, width 128, mean-pooled, sigmoid outputs) twice
for ``--steps`` steps on the train split: once on the rgb tokenizer's 8x8 token grid (a learned
embedding per code), once on the 8x8-pixel patches of the images themselves (a linear patch
embedding), to name which of the world's 8 colours and 5 shapes a scene holds (from its caption).
Prints, on the val split, per-label accuracy and the fraction of scenes whose whole colour set /
shape set is right, against the majority baseline. Everything a FourM model knows about an image
comes through its tokens, so the gap between the two probes bounds what any model trained on these
tokens can read (cross-modal retrieval and rgb -> caption included).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from fourm.data.raw_dataset import load_raw_dataset
from fourm.data.token_dataset import load_token_dataset
from fourm.data.world import COLORS, SHAPES
from fourm.eval.captions import parse_caption
from fourm.utils.atomic import atomic_write_text
from fourm.utils.precision import bf16_autocast

COLOR_NAMES, SHAPE_NAMES = list(COLORS), list(SHAPES)
NUM_LABELS = len(COLOR_NAMES) + len(SHAPE_NAMES)
PATCH = 8


def labels(captions: list[str]) -> torch.Tensor:
    """Multi-hot (N, 13): the colours, then the shapes, a caption names."""
    out = torch.zeros(len(captions), NUM_LABELS)
    for i, text in enumerate(captions):
        for color, shape in parse_caption(text).objects:
            out[i, COLOR_NAMES.index(color)] = 1.0
            out[i, len(COLOR_NAMES) + SHAPE_NAMES.index(shape)] = 1.0
    return out


class Probe(nn.Module):
    """Inputs (B, L) token ids or (B, L, P) patches -> label logits (B, 13)."""

    def __init__(self, length: int, vocab: int | None = None, patch_dim: int | None = None, dim: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim) if vocab is not None else nn.Linear(patch_dim, dim)
        self.pos = nn.Parameter(torch.randn(length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
        self.head = nn.Linear(dim, NUM_LABELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.embed(x) + self.pos).mean(dim=1))


def patches(rgb: np.ndarray) -> torch.Tensor:
    """Images (N, H, W, 3) uint8 -> (N, H/8 * W/8, 8*8*3) float in [0, 1]."""
    n, h, w, c = rgb.shape
    x = torch.from_numpy(rgb).float().div(255.0).reshape(n, h // PATCH, PATCH, w // PATCH, PATCH, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, (h // PATCH) * (w // PATCH), PATCH * PATCH * c)


def scores(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    pred = (logits > 0).float()
    nc = len(COLOR_NAMES)
    return {
        "color_label_acc": float((pred[:, :nc] == y[:, :nc]).float().mean()),
        "shape_label_acc": float((pred[:, nc:] == y[:, nc:]).float().mean()),
        "color_set_acc": float((pred[:, :nc] == y[:, :nc]).all(dim=1).float().mean()),
        "shape_set_acc": float((pred[:, nc:] == y[:, nc:]).all(dim=1).float().mean()),
    }


def train_probe(name: str, model: Probe, x_train, y_train, x_val, y_val, args) -> dict:
    torch.manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for _ in tqdm(range(args.steps), desc=f"probe {name}", leave=False):
        idx = torch.randint(0, len(y_train), (args.batch_size,), generator=g)
        with bf16_autocast("cpu"):
            logits = model(x_train[idx])
        loss = F.binary_cross_entropy_with_logits(logits.float(), y_train[idx])  # fp32 loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad(), bf16_autocast("cpu"):
        logits = torch.cat([model(x_val[i : i + 256]).float() for i in range(0, len(y_val), 256)])
    out = {"train_s": seconds, **scores(logits, y_val)}
    print(f"{name:<8} " + "  ".join(f"{k} {v:.3f}" for k, v in out.items() if k != "train_s") + f"  ({seconds:.0f} s)",
          flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/world_model", help="raw world dataset (pixels and captions)")
    p.add_argument("--tokens", default="data/world_model_tokens", help="its token dataset (rgb tokens)")
    p.add_argument("--train-samples", type=int, default=22800)
    p.add_argument("--val-samples", type=int, default=1200)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/rgb_semantics_probe")
    args = p.parse_args(argv)
    raw = load_raw_dataset(args.data)
    tokens, info = load_token_dataset(args.tokens)
    data = {}
    for split, num in (("train", args.train_samples), ("val", args.val_samples)):
        r = raw[split].select(range(min(num, len(raw[split]))))
        t = tokens[split].select(range(len(r)))
        if list(r["id"]) != list(t["id"]):
            raise SystemExit(f"error: {args.tokens} ({split}) is not the token dataset of {args.data}")
        images = np.stack([np.asarray(x, dtype=np.uint8) for x in r.with_format("numpy")["rgb"]])
        data[split] = (torch.tensor(np.array(t["rgb"]), dtype=torch.long), patches(images), labels(list(r["caption"])))
    (tok_tr, pix_tr, y_tr), (tok_va, pix_va, y_va) = data["train"], data["val"]
    majority = scores(torch.where(y_tr.mean(0) > 0.5, 1.0, -1.0).expand_as(y_va), y_va)
    print(f"{len(y_tr)} train / {len(y_va)} val scenes; {args.steps} steps of {args.batch_size}; threads "
          f"{torch.get_num_threads()}")
    print("majority " + "  ".join(f"{k} {v:.3f}" for k, v in majority.items()), flush=True)
    vocab = info.modalities["rgb"].vocab_size
    report = {
        "majority": majority,
        "tokens": train_probe("tokens", Probe(tok_tr.shape[1], vocab=vocab), tok_tr, y_tr, tok_va, y_va, args),
        "pixels": train_probe("pixels", Probe(pix_tr.shape[1], patch_dim=pix_tr.shape[2]), pix_tr, y_tr, pix_va, y_va,
                              args),
        "steps": args.steps, "batch_size": args.batch_size, "train": len(y_tr), "val": len(y_va),
    }  # fmt: skip
    out = Path(args.out) / "rgb_semantics_probe.json"
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
