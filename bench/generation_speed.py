#!/usr/bin/env python
"""Generation speed of a FourM model with random weights at the "4M-Tiny" shape, fp32 and bf16.

Shape: width 384, 6+6 blocks, 6 heads; rgb/depth/semseg-like image modalities of 196 tokens
(vocabularies 16384, 8192, 4096) and a 30k-vocabulary caption (max 64 tokens). Cases:

* MaskGIT: all 196 rgb tokens in 8 steps (cosine schedule) from a full 196-token depth
  condition, batch 1 and batch 8;
* AR caption: 32 tokens (no early [EOS]) conditioned on a full rgb image, batch 1, with and
  without the KV cache, and the cache speed-up at 64 tokens.

Prints the median seconds per call and per sample, next to the public reference figures (4M
without a KV cache, this 2-core CPU, fp32).

``--shapes 4m-b`` adds the converted 4M-B shape (ml-4m's ``fm_base_12e_12d_swiglu_nobias``: width
768, 12+12 blocks, 12 heads, SwiGLU, no biases; modalities tok_rgb@224, tok_depth@224, caption with
their real vocabularies; random init): MaskGIT (196 tok_rgb tokens, 8 cosine steps, from a full
tok_depth condition, batch 1) and AR captioning (32 tokens from a full tok_rgb condition, batch 1).
With ``--ml4m PATH`` (an apple/ml-4m checkout, bench only) the model is built and saved by ml-4m's
own code in a separate process (``--ml4m-python``: an interpreter where ml-4m's modules import,
see bench/ml4m_parity/make_fixtures.py), timed there with ml-4m's ``GenerationSampler``, and the
very same checkpoint is converted (``FourM.from_pretrained``) and timed with fourm; without it the
ml-4m column is left out and fourm converts a random checkpoint in ml-4m's layout. Run (the CPU is
shared, take the lock)::

    python bench/generation_speed.py
    python bench/generation_speed.py --repeats 5 --dtypes bf16
    python bench/generation_speed.py --shapes 4m-b --ml4m /path/to/ml-4m --ml4m-python /tmp/ml4m_venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    p.add_argument("--shapes", nargs="+", default=["tiny"], choices=["tiny", "4m-b"],
                   help="tiny: the 4M-Tiny shape (reference figures); 4m-b: the converted 4M-B shape")
    p.add_argument("--ml4m", type=Path, default=None,
                   help="apple/ml-4m checkout: time ml-4m's own sampler next to fourm (4m-b; bench only)")
    p.add_argument("--ml4m-python", default=os.environ.get("ML4M_PYTHON", sys.executable),
                   help="Python where ml-4m's modules import (default: $ML4M_PYTHON or this one)")
    args = p.parse_args(argv)
    kept = keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, keep freed memory: {kept}")
    if "tiny" in args.shapes:
        bench_tiny(args)
    if "4m-b" in args.shapes:
        bench_4m_b(args)
    return 0


def bench_tiny(args) -> None:
    torch.manual_seed(0)
    model = FourM(FourMConfig.preset("tiny", MODALITIES)).eval()
    gen = torch.Generator().manual_seed(0)
    depth = torch.randint(8192, (196,), generator=gen)
    rgb = torch.randint(16384, (196,), generator=gen)
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


# ------------------------------------------------------------------------------ converted 4M-B
ML4M_B = {  # ml-4m FM config keys of fm_base_12e_12d_swiglu_nobias (as its config.json holds them)
    "act_layer": "SiLU", "decoder_causal_mask": False, "decoder_depth": 12, "decoder_sep_mask": True, "dim": 768,
    "encoder_depth": 12, "gated_mlp": True, "image_size": 224, "mlp_bias": False, "mlp_ratio": 4, "norm_bias": False,
    "num_heads": 12, "num_register_tokens": 0, "patch_size": 16, "proj_bias": False, "qk_norm": False,
    "qkv_bias": False, "domains_in": ["tok_rgb@224", "tok_depth@224", "caption"],
    "domains_out": ["tok_rgb@224", "caption"],
}
ML4M_VOCAB = {"tok_rgb@224": 16384, "tok_depth@224": 8192, "caption": 30000}
ROOT = Path(__file__).resolve().parents[1]


def synthetic_ml4m_checkpoint(path: Path, seed: int = 0) -> Path:
    """A random checkpoint in ml-4m's FM layout (config.json + model.safetensors) at the 4M-B shape,
    for when ml-4m itself is not at hand (fixed sin-cos tables and zero norm biases left out: the
    converter rebuilds them)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    d = ML4M_B["dim"]
    h = int(2 * int(d * ML4M_B["mlp_ratio"]) / 3)
    s: dict[str, torch.Tensor] = {}

    def rnd(*shape: int, std: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    for side, mods in (("encoder", ML4M_B["domains_in"]), ("decoder", ML4M_B["domains_out"])):
        for m in mods:
            p = f"{side}_embeddings.{m}."
            s[p + "token_emb.weight"] = rnd(ML4M_VOCAB[m], d)
            if side == "decoder":
                s[p + "to_logits.weight"] = rnd(ML4M_VOCAB[m], d)
            else:
                s[p + "mod_emb"] = rnd(1, 1, d)  # shared with the decoder (share_modality_embeddings)
    for b in range(ML4M_B["encoder_depth"]):
        p = f"encoder.{b}."
        s.update({p + "norm1.weight": torch.ones(d), p + "attn.qkv.weight": rnd(3 * d, d), p + "attn.proj.weight": rnd(d, d),
                  p + "norm2.weight": torch.ones(d), p + "mlp.fc1.weight": rnd(h, d), p + "mlp.fc2.weight": rnd(d, h),
                  p + "mlp.fc3.weight": rnd(h, d)})
    s["encoder_norm.weight"] = torch.ones(d)
    s["decoder_proj_context.weight"], s["decoder_proj_context.bias"] = rnd(d, d), torch.zeros(d)
    for b in range(ML4M_B["decoder_depth"]):
        p = f"decoder.{b}."
        s.update({p + "norm1.weight": torch.ones(d), p + "self_attn.qkv.weight": rnd(3 * d, d),
                  p + "self_attn.proj.weight": rnd(d, d), p + "query_norm.weight": torch.ones(d),
                  p + "context_norm.weight": torch.ones(d), p + "cross_attn.q.weight": rnd(d, d),
                  p + "cross_attn.kv.weight": rnd(2 * d, d), p + "cross_attn.proj.weight": rnd(d, d),
                  p + "norm2.weight": torch.ones(d), p + "mlp.fc1.weight": rnd(h, d), p + "mlp.fc2.weight": rnd(d, h),
                  p + "mlp.fc3.weight": rnd(h, d)})
    s["decoder_norm.weight"] = torch.ones(d)
    s["mask_token"] = rnd(1, 1, d)
    path.mkdir(parents=True, exist_ok=True)
    save_file(s, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(ML4M_B))
    return path


def run_ml4m(args, out: Path) -> dict:
    """ml-4m's sampler in its own process (both packages are called ``fourm``); saves the model to ``out``."""
    tokenizer = ROOT / "tests" / "fixtures" / "ml4m" / "text" / "tokenizer.json.xz"
    cmd = [args.ml4m_python, str(ROOT / "bench" / "ml4m_parity" / "ml4m_sampler_speed.py"), "--ml4m", str(args.ml4m),
           "--out", str(out), "--tokenizer", str(tokenizer), "--repeats", str(args.repeats),
           "--warmup", str(args.warmup)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("ML4M_RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SystemExit("ml-4m sampler failed:\n" + "\n".join(tail))
    return json.loads(lines[-1].split(" ", 1)[1])


def bench_4m_b(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ml4m_4m_b"
        ml4m = run_ml4m(args, src) if args.ml4m else None
        if ml4m is None:
            synthetic_ml4m_checkpoint(src)
        model = FourM.from_pretrained(src).eval()  # the ml-4m directory, converted on load
    gen = torch.Generator().manual_seed(0)
    depth = torch.randint(8192, (196,), generator=gen)
    rgb = torch.randint(16384, (196,), generator=gen)
    print(f"\nconverted 4M-B shape: {model.num_parameters() / 1e6:.1f} M parameters (dim 768, 12+12 blocks, 12 heads, "
          f"SwiGLU); ml-4m column: {'ml-4m GenerationSampler, fp32' if ml4m else 'not run (no --ml4m)'}")
    maskgit = GenerationPlan(targets=[GenerationTarget("tok_rgb@224", scheme="maskgit", steps=8, schedule="cosine")])
    caption = GenerationPlan(targets=[GenerationTarget("caption", scheme="ar", max_length=32)], eos=None)
    print(f"{'case (4M-B)':<38}{'dtype':<7}{'fourm s':>9}{'ml-4m s':>9}{'speed-up':>10}")
    for dtype in args.dtypes:
        amp = torch.bfloat16 if dtype == "bf16" else None
        rows = [("maskgit 196 tok, 8 steps, batch 1", {"tok_depth@224": depth}, maskgit, True, "maskgit_b1"),
                ("ar caption 32 tok, batch 1, cache", {"tok_rgb@224": rgb}, caption, True, "ar32"),
                ("ar caption 32 tok, batch 1, no cache", {"tok_rgb@224": rgb}, caption, False, "ar32")]
        for name, cond, plan, cache, key in rows:
            fn = lambda cond=cond, plan=plan, cache=cache, amp=amp: generate_chained(  # noqa: E731
                model, cond, plan, num_samples=1, seed=0, autocast_dtype=amp, use_cache=cache)
            seconds = timed(fn, args.repeats, args.warmup)
            theirs = ml4m[key] if ml4m and dtype == "fp32" else math.nan
            ratio = f"{theirs / seconds:>9.2f}x" if theirs == theirs else f"{'-':>10}"
            shown = f"{theirs:>9.3f}" if theirs == theirs else f"{'-':>9}"
            print(f"{name:<38}{dtype:<7}{seconds:>9.3f}{shown}{ratio}")
    if ml4m:
        print(f"ml-4m: {ml4m['threads']} threads, {ml4m['parameters'] / 1e6:.1f} M parameters, "
              f"caption lengths {ml4m['caption_lengths']} (its sampler has no KV cache)")


if __name__ == "__main__":
    raise SystemExit(main())
