#!/usr/bin/env python
"""Training throughput of a FourM model on the "4M-Tiny" shape, fp32 and bf16 autocast.

Shape: width 384, 6+6 blocks, 6 heads; rgb/depth/semseg-like image modalities of 196 tokens
(vocabularies 16384, 8192, 4096) and a 30k-vocabulary caption (max 64 tokens); batch 16 with 128
input + 128 target tokens per sample spread randomly over the modalities. A step is forward, loss,
backward and AdamW. Prints tokens/s (nominal batch x (128 + 128) per step), the parameter count,
achieved GFLOP/s (matmul FLOPs counted analytically) and matmul peaks measured in the same run.

Run (the CPU is shared, take the lock)::

    python bench/train_throughput.py
    python bench/train_throughput.py --steps 20 --dtypes bf16 --tie
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.attention import set_cpu_attention
from fourm.model.cpu_tuning import keep_freed_memory
from fourm.model.linear import linear, set_fast_cpu_linear
from fourm.model.synthetic import random_batch
from fourm.training.compiled import compiled_loss

MODALITIES = {
    "rgb": ModalityConfig("image", 16384, 196),
    "depth": ModalityConfig("image", 8192, 196),
    "semseg": ModalityConfig("image", 4096, 196),
    "caption": ModalityConfig("sequence", 30000, 64),
}


def forward_matmul_flops(config: FourMConfig, batch) -> float:
    """Matmul FLOPs of one forward pass (projections, attention scores/values, output heads)."""
    d, h = config.dim, config.mlp_hidden
    b, ne = batch.enc_tokens.shape
    nd = batch.dec_input.shape[1]
    enc_tok = (4 * d * d + 3 * d * h) * b * ne  # qkv + proj + SwiGLU, per block (MACs)
    enc_att = 2 * b * ne * ne * d  # QK^T and AV
    dec_tok = (6 * d * d + 3 * d * h) * b * nd  # self qkv+proj, cross q+proj, SwiGLU
    dec_ctx = 2 * d * d * b * ne  # cross-attention K and V of the context
    dec_att = 2 * b * nd * nd * d + 2 * b * nd * ne * d
    macs = config.enc_depth * (enc_tok + enc_att) + config.dec_depth * (dec_tok + dec_ctx + dec_att)
    for i, mod in enumerate(config.modalities.values()):
        n = int(((batch.dec_modality == i) & batch.dec_valid).sum())
        macs += n * d * mod.vocab_size
    return 2.0 * macs


def matmul_peak(dtype: torch.dtype, path: str, m: int = 2048, k: int = 384, n: int = 1536, iters: int = 20) -> float:
    """GFLOP/s of a (m, k) x (k, n) GEMM, via fourm's linear ("model") or torch.matmul ("aten")."""
    a, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    fn = (lambda: linear(a, w)) if path == "model" else (lambda: a @ w.t())
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return 2 * m * k * n * iters / (time.perf_counter() - start) / 1e9


def run(config: FourMConfig, batches: list, dtype: str, steps: int, warmup: int, lr: float, compiled: bool = False) -> dict:
    """Train ``steps`` steps after ``warmup``; returns per-step times of each phase (``compiled``: the loss
    under ``torch.compile``, as ``train.py`` with ``compile: true``; its compilation falls in the warm-up)."""
    torch.manual_seed(0)
    model = FourM(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, fused=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
    loss_fn = compiled_loss(model.loss, torch.device("cpu")) if compiled else model.loss
    times = {"forward": [], "backward": [], "optimizer": [], "step": []}
    losses = []
    start = time.perf_counter()
    for step in range(warmup + steps):
        batch = batches[step % len(batches)]
        t0 = time.perf_counter()
        if step == warmup:
            warm_s = t0 - start
        with autocast:
            loss, _ = loss_fn(batch)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        losses.append(loss.item())
        if step >= warmup:
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                times[key].append(dt)
    return {"times": times, "losses": losses, "params": model.num_parameters(breakdown=True), "model": model, "warmup_s": warm_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=4, help="untimed steps (the allocator settles in 2-4)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-tokens", type=int, default=128)
    p.add_argument("--target-tokens", type=int, default=128)
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--tie", action="store_true", help="tie output heads to input embeddings")
    p.add_argument("--share", action="store_true", help="share encoder/decoder token embeddings")
    p.add_argument("--qk-norm", action="store_true")
    p.add_argument("--no-fast-linear", action="store_true", help="fp32 matmuls through aten/MKL")
    p.add_argument("--attention", default="explicit", choices=["explicit", "sdpa"], help="CPU attention kernel")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="also time each dtype with the loss under torch.compile")
    p.add_argument("--config", default=None,
                   help="a FourM config.json (e.g. models/world-default/model/config.json): its shape and token modalities "
                   "instead of 4M-Tiny's (pixel-patch and box-map modalities left out: random batches have none)")
    p.add_argument("--release-memory", action="store_true", help="leave glibc's default (return freed memory)")
    args = p.parse_args(argv)
    kept = False if args.release_memory else keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_fast_cpu_linear(not args.no_fast_linear)
    set_cpu_attention(args.attention)

    if args.config:
        config = FourMConfig.from_file(args.config)
        tokens_only = {k: m for k, m in config.modalities.items() if not m.is_patches and m.target}
        config = config.replace(modalities=tokens_only)
    else:
        config = FourMConfig.preset(
            args.preset, MODALITIES, tie_embeddings=args.tie, share_encoder_decoder_embeddings=args.share,
            qk_norm=args.qk_norm,
        )
    batches = [random_batch(config, args.batch_size, args.input_tokens, args.target_tokens, seed=s) for s in range(4)]
    nominal_tokens = args.batch_size * (args.input_tokens + args.target_tokens)
    flops = statistics.mean(3 * forward_matmul_flops(config, b) for b in batches)  # fwd + 2x bwd
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fast fp32 linear: "
        f"{not args.no_fast_linear}, keep freed memory: {kept}, CPU attention: {args.attention}"
    )
    print(f"batch {args.batch_size} x ({args.input_tokens} + {args.target_tokens}) tokens; "
          f"{flops / 1e9:.1f} GFLOP (matmul) per training step")
    print("matmul peak (2048x384 @ 384x1536): " + ", ".join(
        f"{dt} {path} {matmul_peak(torch.float32 if dt == 'fp32' else torch.bfloat16, path):.0f} GFLOP/s"
        for dt in args.dtypes for path in ("model", "aten")
    ))
    for dtype in args.dtypes:
        eager_step = None
        for compiled in (False, True) if args.compile else (False,):
            result = run(config, batches, dtype, args.steps, args.warmup, lr=1e-4, compiled=compiled)
            if dtype == args.dtypes[0] and not compiled:
                print(result["model"].summary())
            t = {k: statistics.median(v) for k, v in result["times"].items()}
            eager_step = eager_step or t["step"]
            label = f"{dtype}, compiled" if compiled else dtype
            extra = f" | {eager_step / t['step']:.2f}x eager, warm-up {result['warmup_s']:.0f} s" if compiled else ""
            print(
                f"[{label}] {nominal_tokens / t['step']:8.0f} tokens/s | step {t['step'] * 1e3:6.0f} ms "
                f"(fwd {t['forward'] * 1e3:.0f}, bwd {t['backward'] * 1e3:.0f}, adamw {t['optimizer'] * 1e3:.0f}) | "
                f"{flops / t['step'] / 1e9:.0f} GFLOP/s | loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}{extra}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
