#!/usr/bin/env python
"""Generation speed of a FourM model with random weights at the "4M-Tiny" shape, fp32 and bf16.

Shape: width 384, 6+6 blocks, 6 heads; rgb/depth/semseg-like image modalities of 196 tokens
(vocabularies 16384, 8192, 4096) and a 30k-vocabulary caption (max 64 tokens). Cases:

* MaskGIT: all 196 rgb tokens in 8 steps (cosine schedule) from a full 196-token depth
  condition, batch 1 and batch 8;
* AR caption: 32 tokens (no early [EOS]) conditioned on a full rgb image, batch 1, with and
  without the KV cache, and the cache speed-up at 64 tokens.

Prints the median seconds per call and per sample, next to the public reference figures (4M
without a KV cache, this 2-core CPU, fp32). Run (the CPU is shared, take the lock)::

    python bench/generation_speed.py
    python bench/generation_speed.py --repeats 5 --dtypes bf16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fourm.generation import GenerationPlan, GenerationTarget, generate_chained
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.cpu_tuning import keep_freed_memory

MODALITIES = {
    "rgb": ModalityConfig("image", 16384, 196),
    "depth": ModalityConfig("image", 8192, 196),
    "semseg": ModalityConfig("image", 4096, 196),
    "caption": ModalityConfig("sequence", 30000, 64),
}
# public reference (4M, no KV cache, fp32, this CPU): seconds per call
REFERENCE = {"maskgit_b1": 1.15, "maskgit_b8": 8.9, "ar32_cache": 0.92}


def timed(fn, repeats: int, warmup: int) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed runs (oneDNN builds kernels per shape)")
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    kept = keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = FourM(FourMConfig.preset("tiny", MODALITIES)).eval()
    gen = torch.Generator().manual_seed(0)
    depth = torch.randint(8192, (196,), generator=gen)
    rgb = torch.randint(16384, (196,), generator=gen)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, keep freed memory: {kept}")
    print(f"model: {model.num_parameters() / 1e6:.1f} M parameters (dim 384, 6+6 blocks, 6 heads)")

    maskgit = GenerationPlan(targets=[GenerationTarget("rgb", scheme="maskgit", steps=8, schedule="cosine")])

    def caption_plan(n: int) -> GenerationPlan:
        return GenerationPlan(targets=[GenerationTarget("caption", scheme="ar", max_length=n)], eos=None)

    print(f"{'case':<38}{'dtype':<7}{'s/call':>9}{'s/sample':>10}{'reference':>11}{'speed-up':>10}")
    for dtype in args.dtypes:
        amp = torch.bfloat16 if dtype == "bf16" else None

        def run(conditions, plan, batch, cache=True, amp=amp):
            return lambda: generate_chained(
                model, conditions, plan, num_samples=batch, seed=0, autocast_dtype=amp, use_cache=cache
            )

        rows = [
            ("maskgit 196 tok, 8 steps, batch 1", run({"depth": depth}, maskgit, 1), 1, "maskgit_b1"),
            ("maskgit 196 tok, 8 steps, batch 8", run({"depth": depth}, maskgit, 8), 8, "maskgit_b8"),
            ("ar caption 32 tok, batch 1, cache", run({"rgb": rgb}, caption_plan(32), 1), 1, "ar32_cache"),
            ("ar caption 32 tok, batch 1, no cache", run({"rgb": rgb}, caption_plan(32), 1, False), 1, "ar32_cache"),
        ]
        for name, fn, batch, ref in rows:
            seconds = timed(fn, args.repeats, args.warmup)
            speedup = REFERENCE[ref] / seconds
            print(f"{name:<38}{dtype:<7}{seconds:>9.3f}{seconds / batch:>10.3f}{REFERENCE[ref]:>11.2f}{speedup:>9.2f}x")
        cached = timed(run({"rgb": rgb}, caption_plan(64), 1), args.repeats, args.warmup)
        uncached = timed(run({"rgb": rgb}, caption_plan(64), 1, False), args.repeats, args.warmup)
        print(
            f"{'ar caption 64 tok: cache vs no cache':<38}{dtype:<7}{cached:>9.3f}{uncached:>10.3f}"
            f"{'':>11}{uncached / cached:>9.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
