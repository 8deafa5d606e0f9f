"""Benchmark: training-step and encode/decode throughput of image tokenizer configs on this machine.

    python bench/bench_image_tokenizer.py            # the 4 default tokenizers
    python bench/bench_image_tokenizer.py configs/tokenizers/rgb.yaml [key=value ...]

Prints images/s for a training step and for encode and decode, each in fp32 and bf16 autocast.
"""

from __future__ import annotations

import sys
import time

import torch

from fourm.utils.config import apply_overrides, read_mapping
from tokenizers_zoo.image import ImageTokenizer, ImageTokenizerConfig


def _batch(tok: ImageTokenizer, n: int) -> torch.Tensor:
    size = tok.cfg.image_size
    if tok.modality == "semseg":
        return torch.randint(0, tok.cfg.num_classes, (n, size, size))
    if tok.modality == "edges":
        return (torch.rand(n, 1, size, size) > 0.9).float()
    return torch.rand(n, tok.cfg.channels_in, size, size) * 2 - 1


def time_train_steps(
    tok: ImageTokenizer, batch: torch.Tensor, dtype: torch.dtype | None, steps: int = 5
) -> float:
    """Seconds per optimizer step (after one warm-up step)."""
    opt = torch.optim.AdamW(tok.parameters(), lr=1e-4)
    tok.train()
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss, _ = tok.loss(batch, step=10**9)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / steps


DEFAULT_CONFIGS = [f"configs/tokenizers/{m}.yaml" for m in ("rgb", "depth", "semseg", "edges")]


def time_call(fn, reps: int = 5) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        for path in DEFAULT_CONFIGS:
            bench_config([path])
        return
    bench_config(argv)


def bench_config(argv: list[str]) -> None:
    data = apply_overrides(read_mapping(argv[0]), argv[1:])
    cfg = ImageTokenizerConfig.from_dict(data)
    torch.manual_seed(0)
    tok = ImageTokenizer(cfg)
    n_params = sum(p.numel() for p in tok.parameters()) / 1e6
    bs = cfg.train.batch_size
    batch = _batch(tok, bs)
    print(f"{argv[0]}: {n_params:.2f}M params, batch {bs}, {torch.get_num_threads()} threads")
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        sec = time_train_steps(tok, batch, dtype)
        print(f"  train step {name}: {sec * 1000:.0f} ms/step  ({bs / sec:.0f} img/s)")
    tok.eval()
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            tokens = tok.encode(batch)
            enc = time_call(lambda: tok.encode(batch))
            dec = time_call(lambda tokens=tokens: tok.decode(tokens))
        print(f"  {name}: encode {bs / enc:.0f} img/s, decode {bs / dec:.0f} img/s")


if __name__ == "__main__":
    main()
