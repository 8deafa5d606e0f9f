"""Speed of the procedural world: render-only samples/s (one process) and end-to-end dataset writing
samples/s (process pool + Arrow writing + save_to_disk), plus a compressibility proxy for rgb.

    python bench/world_speed.py [--num 4000] [--size 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def render_rate(num: int, size: int) -> tuple[float, list[dict]]:
    """Samples/s of render_sample in this process, and the samples."""
    from fourm.data.world import WorldConfig, render_sample

    config = WorldConfig(size=size)
    render_sample(0, config=config)  # warm-up (imports, caches)
    start = time.perf_counter()
    samples = [render_sample(i, config=config) for i in range(num)]
    return num / (time.perf_counter() - start), samples


def write_rate(num: int, size: int, workers: int) -> float:
    """Samples/s of write_world_dataset end to end (into a temporary directory)."""
    from fourm.data.raw_dataset import write_world_dataset

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_world_dataset(Path(tmp) / "world", num, size=size, num_workers=workers)
        return num / (time.perf_counter() - start)


def blockiness_psnr(samples: list[dict], factor: int = 4) -> float:
    """Mean PSNR (dB) of rgb after ``factor``x area down-sampling and nearest up-sampling: a crude,
    tokenizer-free indicator of how much high-frequency content the images carry."""
    psnrs = []
    for s in samples:
        img = s["rgb"].astype(np.float64)
        h, w, _ = img.shape
        low = img.reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))
        up = np.repeat(np.repeat(low, factor, axis=0), factor, axis=1)
        mse = max(((img - up) ** 2).mean(), 1e-10)
        psnrs.append(10 * np.log10(255.0**2 / mse))
    return float(np.mean(psnrs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=4000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    rate, samples = render_rate(args.num, args.size)
    print(
        f"render only (1 process): {rate:8.1f} samples/s  ({1e3 / rate:.3f} ms/sample, {args.size}x{args.size})"
    )
    rate = write_rate(args.num, args.size, args.workers)
    print(f"dataset writing ({args.workers} workers): {rate:8.1f} samples/s end to end (N={args.num})")
    print(f"rgb 4x down/up-sampling PSNR: {blockiness_psnr(samples[:500]):.1f} dB (compressibility proxy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
