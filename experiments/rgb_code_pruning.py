"""Near-duplicate rgb codes: how unpredictable are ground tokens, and what does pruning codes cost?

    python experiments/rgb_code_pruning.py [--tokenizer runs/tok/rgb/tokenizer] [--data data/world_model] [--num 512]

Ground positions: patches whose 3x3 neighbourhood of patches is pure background (semseg 0) in
val scenes. Reports the mean per-position code entropy there and the val PSNR for the tokenizer as
trained and after pruning codes with tokenizers_zoo's prune_near_duplicate_codes at several distances.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from fourm.data.raw_dataset import RawSamples, load_raw_dataset
from tokenizers_zoo.image.tokenizer import ImageTokenizer
from tokenizers_zoo.quantizers.pruning import prune_near_duplicate_codes


def ground_entropy(tokens: np.ndarray, ground: np.ndarray) -> float:
    """Mean over grid positions (with >= 20 ground samples) of the code entropy there (nats)."""
    ents = []
    for p in range(tokens.shape[1]):
        ids = tokens[ground[:, p], p]
        if len(ids) < 20:
            continue
        _, counts = np.unique(ids, return_counts=True)
        q = counts / counts.sum()
        ents.append(float(-(q * np.log(q)).sum()))
    return float(np.mean(ents))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.float(), b.float()).item()
    return 10 * np.log10(4.0 / max(mse, 1e-12))  # images in [-1, 1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizer", default="runs/tok/rgb/tokenizer")
    p.add_argument("--data", default="data/world_model")
    p.add_argument("--num", type=int, default=512)
    p.add_argument("--fit", type=int, default=1024, help="train images for the pruning statistics")
    args = p.parse_args()
    ds = load_raw_dataset(args.data)
    val, train = RawSamples(ds["val"]), RawSamples(ds["train"])
    to_t = lambda rows: torch.tensor(np.stack([r["rgb"] for r in rows])).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    val_rows = [val[i] for i in range(args.num)]
    images = to_t(val_rows)
    fit = to_t([train[i] for i in range(args.fit)])
    sem = torch.tensor(np.stack([r["semseg"] for r in val_rows])) > 0  # (B, H, W) foreground
    tok = ImageTokenizer.from_pretrained(args.tokenizer).eval()
    g = tok.grid_size[0]
    fg = F.max_pool2d(F.adaptive_max_pool2d(sem[:, None].float(), g), 3, 1, 1)[:, 0]  # any fg in 3x3 patches
    ground = (fg == 0).reshape(len(val_rows), -1).numpy()
    print(f"ground positions: {ground.mean():.1%} of {len(val_rows)} x {g * g}")
    for dist in (None, 0.5, 1.0, 1.5, 2.0):
        t = ImageTokenizer.from_pretrained(args.tokenizer).eval()
        if dist is not None:
            report = prune_near_duplicate_codes(t, fit, dist)
        with torch.no_grad():
            ids = t.encode(images)
            rec = t.decode(ids)
        label = "as trained" if dist is None else f"prune < {dist} x median NN distance ({report.removed} codes)"
        used = len(np.unique(ids.numpy()))
        print(f"{label:>48}: ground entropy {ground_entropy(ids.numpy(), ground):.2f} nats, "
              f"PSNR {psnr(rec, images):.2f} dB, codes used {used}")


if __name__ == "__main__":
    main()
