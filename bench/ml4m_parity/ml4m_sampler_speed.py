"""ml-4m's own sampler on a random-initialised 4M-B model (the ml-4m column of bench/generation_speed.py).

Run by ``bench/generation_speed.py --ml4m PATH`` in a separate process (ml-4m's package is also
called ``fourm``; this script imports ml-4m's, never this project's). It builds ml-4m's ``FM`` at
the 4M-B shape (``fm_base_12e_12d_swiglu_nobias``: width 768, 12 + 12 blocks, 12 heads) with the
modalities the benchmark uses, saves it with ml-4m's ``save_pretrained`` into ``--out`` (so that
the benchmark converts the very same model), times MaskGIT (all 196 ``tok_rgb@224`` tokens in 8
cosine steps from a full ``tok_depth@224`` condition) and AR captioning (32 tokens from a full
``tok_rgb@224`` condition) with ml-4m's ``GenerationSampler``, and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import lzma
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import FM_COMMON, import_ml4m  # noqa: E402  (this directory, not a package)

DOMAINS_IN = ["tok_rgb@224", "tok_depth@224", "caption"]
DOMAINS_OUT = ["tok_rgb@224", "caption"]
SHAPE = {"dim": 768, "encoder_depth": 12, "decoder_depth": 12, "num_heads": 12}


def timed(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ml4m", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="directory for the saved ml-4m model (hub layout)")
    p.add_argument("--tokenizer", required=True, type=Path, help="WordPiece tokenizer.json (.xz accepted)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--caption-tokens", type=int, default=32)
    args = p.parse_args(argv)
    import_ml4m(args.ml4m)
    import torch
    from fourm.data.modality_info import MODALITY_INFO
    from fourm.models.fm import FM
    from fourm.models.generate import (
        GenerationSampler,
        build_chained_generation_schedules,
        init_empty_target_modality,
        init_full_input_modality,
    )
    from tokenizers import Tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    raw = args.tokenizer.read_bytes()
    text = Tokenizer.from_str((lzma.decompress(raw) if args.tokenizer.suffix == ".xz" else raw).decode())
    torch.manual_seed(0)
    model = FM(config={**FM_COMMON, **SHAPE, "domains_in": DOMAINS_IN, "domains_out": DOMAINS_OUT}).eval()
    model.save_pretrained(str(args.out))
    sampler = GenerationSampler(model)
    gen = torch.Generator().manual_seed(0)
    depth = torch.randint(8192, (1, 196), generator=gen)
    rgb = torch.randint(16384, (1, 196), generator=gen)
    eos = text.token_to_id("[EOS]")

    def schedule(target: str, scheme: str, tokens: int, steps: int):
        return build_chained_generation_schedules(
            cond_domains=[], target_domains=[target], tokens_per_target=[tokens], autoregression_schemes=[scheme],
            decoding_steps=[steps], token_decoding_schedules=["cosine"], temps=[1.0], temp_schedules=["constant"],
            cfg_scales=[1.0], cfg_schedules=["constant"], modality_info=MODALITY_INFO)

    def sample(cond: str, ids, target: str, tokens: int):
        d = {cond: {"tensor": ids.clone()}}
        d = init_full_input_modality(d, MODALITY_INFO, cond, "cpu", eos_id=eos)
        return init_empty_target_modality(d, MODALITY_INFO, target, 1, tokens, "cpu")

    maskgit = schedule("tok_rgb@224", "maskgit", 196, 8)
    ar = schedule("caption", "autoregressive", args.caption_tokens, 1)
    lengths = []

    def run_maskgit():
        with torch.no_grad():
            out = sampler.generate(sample("tok_depth@224", depth, "tok_rgb@224", 196), maskgit, text_tokenizer=text,
                                   seed=0)
        assert bool((~out["tok_rgb@224"]["input_mask"]).all())

    def run_ar():
        with torch.no_grad():
            out = sampler.generate(sample("tok_rgb@224", rgb, "caption", args.caption_tokens), ar,
                                   text_tokenizer=text, seed=0)
        lengths.append(int((~out["caption"]["input_mask"]).sum()))

    result = {
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "maskgit_b1": timed(run_maskgit, args.repeats, args.warmup),
        f"ar{args.caption_tokens}": timed(run_ar, args.repeats, args.warmup),
        "caption_lengths": sorted(set(lengths)),
    }
    print("ML4M_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
