"""Measure a trained dynamic (LaVIT-style) rgb tokenizer against a fixed grid (experiments/dynamic_tokenizer.sh).

    python experiments/dynamic_tokenizer_measure.py --data DATA --dynamic RUN/tokenizer --grid RUN2/tokenizer \
        [--thresholds 0.5 0.3] [--out measure.json]

On the val split: tokens per image against the number of objects (len(bboxes)); reconstruction PSNR
of the dynamic tokenizer at its threshold(s), of the same tokenizer with a fixed budget of the k most
probable patches per image (k = its mean count, and every patch), and of the fixed-grid tokenizer.
Everything in fp32. Prints a JSON summary (also written to --out).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from fourm.data.raw_dataset import RawSamples, load_raw_dataset
from tokenizers_zoo.image import ImageTokenizer
from tokenizers_zoo.image.metrics import ReconstructionMetrics


def psnr_of(images: torch.Tensor, decoded: torch.Tensor) -> float:
    """PSNR (dB) of model-convention rgb ``decoded`` against ``images``."""
    m = ReconstructionMetrics("rgb")
    m.update(decoded, images)
    return m.compute()["psnr"]


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dynamic", required=True, help="dynamic tokenizer directory")
    ap.add_argument("--grid", default=None, help="fixed-grid tokenizer directory to compare with")
    ap.add_argument("--split", default="val")
    ap.add_argument("--num", type=int, default=300)
    ap.add_argument("--thresholds", type=float, nargs="*", default=[])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)

    split = RawSamples(load_raw_dataset(args.data)[args.split])
    n = min(args.num, len(split))
    samples = [split[i] for i in range(n)]
    objects = np.array([len(s["bboxes"] or []) for s in samples])
    dyn = ImageTokenizer.from_pretrained(args.dynamic)
    images = dyn.preprocess(np.stack([s["rgb"] for s in samples]))  # (n, 3, H, W) in [-1, 1]
    batches = list(range(0, n, 64))
    result: dict = {
        "images": n,
        "objects_histogram": {int(k): int((objects == k).sum()) for k in np.unique(objects)},
    }

    def run_dynamic(
        top_k: int | None = None, threshold: float | None = None
    ) -> tuple[np.ndarray, list[float]]:
        """Counts per image and per-image PSNRs of encode -> decode."""
        saved = dyn.cfg.dynamic.threshold
        if threshold is not None:
            dyn.cfg.dynamic.threshold = threshold
        counts, psnrs = [], []
        for s in batches:
            x = images[s : s + 64]
            sets = dyn.encode_sets(x, top_k=top_k)
            out = dyn.decode_sets(sets)
            counts += [len(p) for p, _ in sets]
            psnrs += [psnr_of(x[i : i + 1], out[i : i + 1]) for i in range(len(x))]
        dyn.cfg.dynamic.threshold = saved
        return np.array(counts), psnrs

    def by_objects(values) -> dict[int, float]:
        values = np.asarray(values, dtype=float)
        return {int(k): round(float(values[objects == k].mean()), 2) for k in np.unique(objects)}

    counts, psnrs = run_dynamic()
    result["dynamic"] = {
        "threshold": dyn.cfg.dynamic.threshold,
        "tokens_mean": round(float(counts.mean()), 2),
        "tokens_std": round(float(counts.std()), 2),
        "tokens_min_max": [int(counts.min()), int(counts.max())],
        "tokens_by_objects": by_objects(counts),
        "tokens_std_by_objects": {
            int(k): round(float(counts[objects == k].std()), 2) for k in np.unique(objects)
        },
        "corr_tokens_objects": round(float(np.corrcoef(counts, objects)[0, 1]), 3),
        "psnr": round(float(np.mean(psnrs)), 2),
        "psnr_by_objects": by_objects(psnrs),
    }
    with torch.no_grad():
        probs = torch.cat([dyn.keep_logits(images[s : s + 64])[1].softmax(-1)[..., 1] for s in batches])
    result["dynamic"]["expected_tokens_mean"] = round(float(probs.sum(1).mean()), 2)
    for t in args.thresholds:
        c, p = run_dynamic(threshold=t)
        result[f"dynamic_threshold_{t}"] = {"tokens_mean": round(float(c.mean()), 2), "tokens_by_objects": by_objects(c),
                                            "psnr": round(float(np.mean(p)), 2)}  # fmt: skip
    k = max(1, int(round(counts.mean())))
    for name, top_k in ((f"dynamic_top{k}", k), (f"dynamic_top{dyn.num_patches}", dyn.num_patches)):
        _, p = run_dynamic(top_k=top_k)
        result[name] = {
            "tokens": top_k,
            "psnr": round(float(np.mean(p)), 2),
            "psnr_by_objects": by_objects(p),
        }
    if args.grid:
        grid = ImageTokenizer.from_pretrained(args.grid)
        p = []
        for s in batches:
            x = images[s : s + 64]
            out = grid.decode(grid.encode(x))
            p += [psnr_of(x[i : i + 1], out[i : i + 1]) for i in range(len(x))]
        result["grid"] = {
            "tokens": grid.num_tokens,
            "psnr": round(float(np.mean(p)), 2),
            "psnr_by_objects": by_objects(p),
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
