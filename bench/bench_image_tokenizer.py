"""Benchmark: training-step and encode/decode throughput of an image tokenizer config on this machine.

    flock /tmp/fourm-cpu.lock \
        python bench/bench_image_tokenizer.py configs/tokenizers/rgb.yaml [key=value ...]

Prints images/s for a training step (fp32 and bf16 autocast) and for encode+decode.
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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
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
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        t0 = time.perf_counter()
        tokens = tok.encode(batch)
        t1 = time.perf_counter()
        tok.decode(tokens)
        t2 = time.perf_counter()
    print(f"  encode bf16: {bs / (t1 - t0):.0f} img/s, decode bf16: {bs / (t2 - t1):.0f} img/s")


if __name__ == "__main__":
    main()
