"""Measure a trained dynamic (LaVIT-style) rgb tokenizer against a fixed grid (experiments/dynamic_tokenizer.sh).

    python experiments/dynamic_tokenizer_measure.py --data DATA --dynamic RUN/tokenizer --grid RUN2/tokenizer \
        [--thresholds 0.5 0.3] [--out measure.json]

On the val split: tokens per image against the number of objects (len(bboxes)) and against the number
of patches an object box touches; whether kept patches touch objects more often than patches do at
random (selection precision vs base rate); reconstruction PSNR of the dynamic tokenizer at its
inference threshold (learned or fixed) and at --thresholds, of the same tokenizer with the k most
probable patches per image (k = its mean count, the grid's token count, every patch), with the same
number of *random* patches per image as its threshold keeps, and of the fixed-grid tokenizer.
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


def object_patches(bboxes: list[dict] | None, grid: int) -> np.ndarray:
    """(grid * grid,) bool, row-major: patches that overlap an object's box ([x0, y0, x1, y1] in 0..1)."""
    mask = np.zeros((grid, grid), dtype=bool)
    edges = np.arange(grid + 1) / grid
    for b in bboxes or []:
        x0, y0, x1, y1 = b["box"]
        rows = (edges[1:] > y0) & (edges[:-1] < y1)
        cols = (edges[1:] > x0) & (edges[:-1] < x1)
        mask |= rows[:, None] & cols[None, :]
    return mask.reshape(-1)


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, rounded; None when either side is constant (e.g. 1 token per image)."""
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 3)


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
    grid_side = int(round(dyn.num_patches**0.5))
    on_object = np.stack([object_patches(s["bboxes"], grid_side) for s in samples])  # (n, N)
    images = dyn.preprocess(np.stack([s["rgb"] for s in samples]))  # (n, 3, H, W) in [-1, 1]
    batches = list(range(0, n, 64))
    result: dict = {
        "images": n,
        "objects_histogram": {int(k): int((objects == k).sum()) for k in np.unique(objects)},
    }

    def run_dynamic(
        top_k: int | None = None, threshold: float | None = None
    ) -> tuple[np.ndarray, list[float], np.ndarray]:
        """Counts per image, per-image PSNRs of encode -> decode, and the kept-patch masks (n, N)."""
        counts, psnrs, masks = [], [], []
        for s in batches:
            x = images[s : s + 64]
            sets = dyn.encode_sets(x, top_k=top_k, threshold=threshold)
            out = dyn.decode_sets(sets)
            counts += [len(p) for p, _ in sets]
            psnrs += [psnr_of(x[i : i + 1], out[i : i + 1]) for i in range(len(x))]
            for p, _ in sets:
                m = np.zeros(dyn.num_patches, dtype=bool)
                m[p.numpy()] = True
                masks.append(m)
        return np.array(counts), psnrs, np.stack(masks)

    def run_random(counts: np.ndarray) -> list[float]:
        """Per-image PSNRs with ``counts[i]`` uniformly random patches kept in image i (seeded)."""
        g = torch.Generator().manual_seed(0)
        psnrs = []
        for s in batches:
            x = images[s : s + 64]
            keep = torch.zeros(len(x), dyn.num_patches)
            for i in range(len(x)):
                keep[i, torch.randperm(dyn.num_patches, generator=g)[: int(counts[s + i])]] = 1.0
            h, _ = dyn.keep_logits(x)
            z_q, _, _ = dyn._quantize_kept(dyn.merger(h, keep), keep)
            out = dyn.output_to_images(dyn.decoder(z_q, keep))
            psnrs += [psnr_of(x[i : i + 1], out[i : i + 1]) for i in range(len(x))]
        return psnrs

    def by_objects(values) -> dict[int, float]:
        values = np.asarray(values, dtype=float)
        return {int(k): round(float(values[objects == k].mean()), 2) for k in np.unique(objects)}

    dyn.eval()
    counts, psnrs, kept = run_dynamic()
    object_count = on_object.sum(1)
    result["dynamic"] = {
        "threshold_mode": dyn.cfg.dynamic.threshold_mode,
        "threshold": round(dyn.inference_threshold, 4),
        "tokens_mean": round(float(counts.mean()), 2),
        "tokens_std": round(float(counts.std()), 2),
        "tokens_min_max": [int(counts.min()), int(counts.max())],
        "tokens_by_objects": by_objects(counts),
        "tokens_std_by_objects": {
            int(k): round(float(counts[objects == k].std()), 2) for k in np.unique(objects)
        },
        "corr_tokens_objects": correlation(counts, objects),
        # complexity as area: patches an object box touches
        "object_patches_by_objects": by_objects(object_count),
        "corr_tokens_object_patches": correlation(counts, object_count),
        # share of kept patches that touch an object, against the share of all patches that do
        "kept_on_object": round(float(on_object[kept].mean()), 3),
        "patches_on_object": round(float(on_object.mean()), 3),
        "psnr": round(float(np.mean(psnrs)), 2),
        "psnr_by_objects": by_objects(psnrs),
        "psnr_random_same_counts": round(float(np.mean(run_random(counts))), 2),
    }
    with torch.no_grad():
        probs = torch.cat([dyn.keep_logits(images[s : s + 64])[1].softmax(-1)[..., 1] for s in batches])
    expected = probs.sum(1).numpy()
    result["dynamic"]["expected_tokens_mean"] = round(float(expected.mean()), 2)
    result["dynamic"]["expected_tokens_by_objects"] = by_objects(expected)
    result["dynamic"]["keep_prob_min_mean_max"] = [
        round(float(v), 3) for v in (probs.min(), probs.mean(), probs.max())
    ]
    result["dynamic"]["keep_prob_on_off_object"] = [round(float(probs.numpy()[on_object].mean()), 3),
                                                    round(float(probs.numpy()[~on_object].mean()), 3)]  # fmt: skip
    for t in args.thresholds:
        c, p, _ = run_dynamic(threshold=t)
        result[f"dynamic_threshold_{t}"] = {"tokens_mean": round(float(c.mean()), 2), "tokens_by_objects": by_objects(c),
                                            "psnr": round(float(np.mean(p)), 2)}  # fmt: skip
    k = max(1, int(round(counts.mean())))
    budgets = {k, dyn.num_patches}
    if args.grid:
        budgets.add(ImageTokenizer.from_pretrained(args.grid).num_tokens)
    for top_k in sorted(budgets):
        _, p, kept_k = run_dynamic(top_k=top_k)
        name = f"dynamic_top{top_k}"
        result[name] = {
            "tokens": top_k,
            "psnr": round(float(np.mean(p)), 2),
            "psnr_by_objects": by_objects(p),
            "kept_on_object": round(float(on_object[kept_k].mean()), 3),
        }
        if top_k < dyn.num_patches:
            result[name]["psnr_random"] = round(float(np.mean(run_random(np.full(n, top_k)))), 2)
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
