"""Benchmark: caption -> rgb and rgb -> caption retrieval on the world val split, recall@1/5/10.

    python bench/retrieval_world.py                                       # pooled + predicted
    python bench/retrieval_world.py --bundle-predicted runs/finetune_ce/bundle --methods predicted

Query i's positive is key i among the first ``--num`` val samples (chance: k / N). ``pooled``
(default bundle model) is measured in four variants: plain mean pooling with dot product, l2 only,
per-modality centring only, centring + l2 (centres: ``--center-samples`` train samples, no pairing
used). ``predicted`` uses the bundle of the fine-tuned model with a vector modality
(``scripts/finetune_caption_embedding.sh``), expected-code, greedy and MaskGIT decoding; it is skipped with a
message when that bundle is absent. Writes
``<out>/retrieval_world.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fourm.errors import FourmError
from fourm.retrieval.data import RetrievalData
from fourm.retrieval.embed import PooledEmbedder
from fourm.retrieval.evaluate import evaluate_pair, format_report
from fourm.retrieval.settings import RetrievalSettings, fit_reference_centers, load_pipeline, make_embedder
from fourm.utils.atomic import atomic_write_text

POOLED_VARIANTS = {  # name -> (center, normalize)
    "mean_dot": (False, False),
    "mean_l2": (False, True),
    "center_dot": (True, False),
    "center_l2": (True, True),
}
PAIRS = (("caption", "rgb"), ("rgb", "caption"))


def both_directions(q_cap: torch.Tensor, k_rgb: torch.Tensor) -> dict:
    """Reports of caption -> rgb and rgb -> caption for paired embeddings (N, D) each."""
    out = {}
    for query, key in PAIRS:
        a, b = (q_cap, k_rgb) if query == "caption" else (k_rgb, q_cap)
        report = evaluate_pair(a, b)
        out[f"{query}->{key}"] = report
        print("  " + format_report(f"{query} -> {key}", report), flush=True)
    return out


def bench_pooled(args, data: RetrievalData) -> dict:
    pipe = load_pipeline(args.bundle)
    settings = RetrievalSettings(method="pooled", center_samples=args.center_samples, batch_size=args.batch_size)
    embedder = make_embedder(pipe, settings, *data.specials(pipe))
    assert isinstance(embedder, PooledEmbedder)
    t0 = time.perf_counter()
    fit_reference_centers(embedder, pipe, args.data, ["caption", "rgb"], settings, data.split, progress=True)
    items, rows = data.items(["caption", "rgb"], pipe, batch_size=args.batch_size, progress=True)
    t1 = time.perf_counter()
    pools = {m: embedder.pools([{m: it[m]} for it in items], progress=True, desc=f"encode {m}") for m in ("caption", "rgb")}
    seconds = time.perf_counter() - t1
    results = {"bundle": args.bundle, "num": len(rows), "encode_items_per_s": 2 * len(rows) / seconds,
               "tokenize_and_centres_s": t1 - t0, "variants": {}}
    for name, (center, normalize) in POOLED_VARIANTS.items():
        embedder.center, embedder.normalize = center, normalize
        print(f"pooled {name} (center={center}, normalize={normalize})", flush=True)
        cap, rgb = (embedder.combine(*pools[m]) for m in ("caption", "rgb"))
        results["variants"][name] = {"center": center, "normalize": normalize, **both_directions(cap, rgb)}
    return results


def bench_predicted(args, data: RetrievalData) -> dict:
    bundle = Path(args.bundle_predicted)
    if not (bundle / "model" / "model.safetensors").is_file():
        message = f"skipped: no fine-tuned bundle at {bundle} (bash scripts/finetune_caption_embedding.sh makes one)"
        print(f"predicted: {message}", flush=True)
        return {"skipped": message}
    pipe = load_pipeline(bundle)
    results: dict = {"bundle": str(bundle), "decodings": {}}
    items = None
    for decoding in ("expected", "greedy", "maskgit"):
        settings = RetrievalSettings(method="predicted", decoding=decoding, batch_size=args.batch_size)
        try:
            embedder = make_embedder(pipe, settings, *data.specials(pipe))
        except FourmError as e:
            print(f"predicted: skipped: {e}", flush=True)
            return {"skipped": str(e)}
        if items is None:
            items, rows = data.items(["caption", "rgb"], pipe, batch_size=args.batch_size, progress=True)
            results["num"] = len(rows)
        print(f"predicted {embedder.modality} {decoding} ({embedder.steps} steps)", flush=True)
        t0 = time.perf_counter()
        cap = embedder([{"caption": it["caption"]} for it in items], progress=True)
        rgb = embedder([{"rgb": it["rgb"]} for it in items], progress=True)
        speed = 2 * len(items) / (time.perf_counter() - t0)
        results["decodings"][decoding] = {"steps": embedder.steps, "items_per_s": speed, **both_directions(cap, rgb)}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/world_model")
    p.add_argument("--split", default="val")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--bundle", default="models/world-default")
    p.add_argument("--bundle-predicted", default="runs/finetune_ce/bundle")
    p.add_argument("--methods", default="pooled,predicted")
    p.add_argument("--center-samples", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="runs/retrieval_world")
    args = p.parse_args(argv)
    try:
        data = RetrievalData(args.data, args.split, args.num)
        n = len(data)
        report = {"data": args.data, "split": args.split, "num": n, "chance": {f"@{k}": min(k, n) / n for k in (1, 5, 10)},
                  "threads": torch.get_num_threads()}
        print(f"{args.data} {args.split}: {n} samples, chance R@1 {1 / n:.4f} R@5 {min(5, n) / n:.4f} R@10 {min(10, n) / n:.4f}")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if "pooled" in methods:
            report["pooled"] = bench_pooled(args, data)
        if "predicted" in methods:
            report["predicted"] = bench_predicted(args, data)
    except FourmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) / "retrieval_world.json"
    if out.is_file():  # keep results of methods not run this time (same data and size)
        old = json.loads(out.read_text())
        if (old.get("data"), old.get("split"), old.get("num")) == (args.data, args.split, n):
            report = {**{k: v for k, v in old.items() if k in ("pooled", "predicted")}, **report}
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
