"""Score the continuous-image run on held-out scenes: caption -> image by (a) the discrete route (rgb
tokens, MaskGIT, decoded by the rgb tokenizer of a bundle) and (b) the diffusion route (rgb_patches_dh,
64 pixel patches by the diffusion head: one pass at several DDIM steps, and progressive rounds), each
image scored by the rgb checker against its caption (fourm.eval.world_scores.checker_scores); chance:
another scene's true image; ceilings: the true image, and its rgb tokens decoded. Also writes a small
comparison picture (rows = scenes; columns = true, rgb tokens decoded, discrete, diffusion variants).

    python experiments/continuous_targets_image/evaluate.py --model /tmp/cti/run/model --tokens /tmp/cti/tokens \
        --raw data/world_model_ce --bundle models/world-default --num 256 --out /tmp/cti/run/eval.json \
        --picture docs/experiments/continuous_targets/caption_to_image.png
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import datasets as hfd
import numpy as np
import torch
from PIL import Image

from fourm.codecs import ValueCodec
from fourm.data.token_dataset import TokenSamples, load_token_dataset
from fourm.eval.world_scores import checker_scores
from fourm.generation.chain import GenerationPlan, GenerationTarget, generate_chained
from fourm.generation.conditions import GivenTokens
from fourm.generation.pipeline import FourMPipeline
from fourm.model.fourm import FourM

NAME = "rgb_patches_dh"
MAX_PICTURE_BYTES = 190_000


def batched(fn: Callable[[GivenTokens, int], list[np.ndarray]], captions: torch.Tensor, eos: int, pad: int,
            batch: int) -> tuple[list[np.ndarray], float]:  # fmt: skip
    """Images from caption ids (N, Lc) in batches, and the seconds it took."""
    out: list[np.ndarray] = []
    start = time.perf_counter()
    for i in range(0, len(captions), batch):
        ids = captions[i : i + batch]
        out += fn(GivenTokens.sequence(ids, eos=eos, pad=pad), i)
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--raw", required=True, help="raw dataset with the captions and images (same ids)")
    ap.add_argument("--bundle", required=True, help="bundle whose rgb tokenizer decodes the rgb tokens")
    ap.add_argument("--num", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", required=True)
    ap.add_argument("--picture", default=None)
    ap.add_argument("--picture-rows", type=int, default=8)
    args = ap.parse_args()
    model = FourM.from_pretrained(args.model).eval()
    bundle = FourMPipeline.from_pretrained(args.bundle, device="cpu")
    rgb_codec, caption_codec = bundle.codecs["rgb"], bundle.codecs["caption"]
    value_codec = ValueCodec(
        NAME, model.config.modalities[NAME].length, model.config.modalities[NAME].value_dim
    )
    dsd, _ = load_token_dataset(args.tokens)
    n = min(args.num, len(dsd["val"]))
    val = TokenSamples(dsd["val"], ["rgb", "caption", NAME])
    rows = [val[i] for i in range(n)]
    raw = hfd.load_from_disk(args.raw)["val"].select(range(n))
    if raw["id"] != dsd["val"]["id"][:n]:
        raise SystemExit("the raw and token datasets' val ids differ")
    captions = raw["caption"]
    true_images = [np.asarray(im, dtype=np.uint8) for im in raw["rgb"]]
    width = max(len(r["caption"]) for r in rows)
    ids = torch.full((n, width), caption_codec.pad, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["caption"])] = r["caption"]
    eos, pad = caption_codec.eos, caption_codec.pad

    def discrete(guidance: float) -> Callable[[GivenTokens, int], list[np.ndarray]]:
        target = GenerationTarget("rgb", scheme="maskgit", steps=8, temperature=1.0, temperature_end=0.0,
                                  temperature_schedule="linear", guidance_scale=guidance)  # fmt: skip

        def fn(given: GivenTokens, i: int) -> list[np.ndarray]:
            plan = GenerationPlan(targets=[target])
            toks = generate_chained(
                model, {"caption": given}, plan, given.batch_size, seed=i, autocast_dtype=torch.bfloat16
            )
            return rgb_codec.decode(toks["rgb"])

        return fn

    def diffusion(steps: int, rounds: int) -> Callable[[GivenTokens, int], list[np.ndarray]]:
        target = GenerationTarget(NAME, scheme="value", steps=steps, value_rounds=rounds)

        def fn(given: GivenTokens, i: int) -> list[np.ndarray]:
            plan = GenerationPlan(targets=[target])
            vals = generate_chained(
                model, {"caption": given}, plan, given.batch_size, seed=i, autocast_dtype=torch.bfloat16
            )
            return value_codec.decode(vals[NAME])

        return fn

    routes = {
        "discrete: rgb tokens, MaskGIT 8 steps, rgb tokenizer": discrete(1.0),
        "discrete: rgb tokens, MaskGIT 8 steps, guidance 3": discrete(3.0),
        "diffusion: one pass, DDIM 1 (posterior mean)": diffusion(1, 1),
        "diffusion: one pass, DDIM 20": diffusion(20, 1),
        "diffusion: one pass, DDIM 50": diffusion(50, 1),
        "diffusion: progressive 8 rounds, DDIM 20": diffusion(20, 8),
        "diffusion: progressive 16 rounds, DDIM 20": diffusion(20, 16),
    }
    result: dict = {"num": n, "model": args.model}
    result["ceiling: true image"] = checker_scores(true_images, captions)
    token_images = rgb_codec.decode(torch.stack([r["rgb"] for r in rows]))
    result["ceiling: true rgb tokens decoded"] = checker_scores(token_images, captions)
    patch_images = value_codec.decode(torch.stack([r[NAME] for r in rows]))
    result["check: true patches decoded == true image"] = bool(
        all(np.array_equal(a, b) for a, b in zip(patch_images, true_images))
    )
    result["chance: another scene's true image"] = checker_scores(true_images[1:] + true_images[:1], captions)
    shown: dict[str, list[np.ndarray]] = {"true": true_images, "rgb tokens": token_images}
    with torch.no_grad():
        for label, fn in routes.items():
            images, seconds = batched(fn, ids, eos, pad, args.batch)
            result[label] = {**checker_scores(images, captions), "seconds": round(seconds, 1)}
            shown[label] = images
            print(label, json.dumps(result[label]), flush=True)
    text = json.dumps(result, indent=2)
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    if args.picture:
        cols = ["true", "rgb tokens", "discrete: rgb tokens, MaskGIT 8 steps, rgb tokenizer",
                "diffusion: one pass, DDIM 1 (posterior mean)", "diffusion: one pass, DDIM 20",
                "diffusion: progressive 16 rounds, DDIM 20"]  # fmt: skip
        gap = 2
        k = min(args.picture_rows, n)
        grid = np.full((k * (64 + gap), len(cols) * (64 + gap), 3), 255, np.uint8)
        for r in range(k):
            for c, col in enumerate(cols):
                y, x = r * (64 + gap), c * (64 + gap)
                grid[y : y + 64, x : x + 64] = shown[col][r]
        picture = Image.fromarray(grid)
        picture.save(args.picture, format="PNG", optimize=True)
        if Path(args.picture).stat().st_size > MAX_PICTURE_BYTES:  # noisy samples: a 256-colour palette
            picture.quantize(256).save(args.picture, format="PNG", optimize=True)
        print("picture columns: " + " | ".join(cols))
        print("\n".join(f"row {r}: {captions[r]}" for r in range(k)))


if __name__ == "__main__":
    main()
