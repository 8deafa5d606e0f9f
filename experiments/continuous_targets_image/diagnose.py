"""Diagnostics of the diffusion route of the continuous-image run: the head's one-step x0 estimate of the
true patches at several noise levels (MSE in [-1, 1] units, against the MSE of the all-grey image), the
sampled patches' roughness (mean |difference| of neighbouring pixels inside a patch, vs the true
images'), and DDIM sampling in fp32 against bf16 autocast (rgb checker score), from the caption.

    python experiments/continuous_targets_image/diagnose.py --model /tmp/cti/run/model --tokens /tmp/cti/tokens \
        --raw data/world_model_ce --num 64 --out /tmp/cti/run/diagnose.json
"""

from __future__ import annotations

import argparse
import json

import datasets as hfd
import torch

from fourm.codecs import ValueCodec
from fourm.data.token_dataset import TokenSamples, load_token_dataset
from fourm.eval.world_scores import checker_scores
from fourm.generation.chain import GenerationPlan, GenerationTarget, generate_chained
from fourm.generation.conditions import GivenTokens, encoder_inputs
from fourm.model.fourm import FourM

NAME = "rgb_patches_dh"


def roughness(values: torch.Tensor) -> float:
    """Mean |x - right neighbour| of the pixels inside each 8 x 8 patch (values (N, 64 * 192) in [-1, 1])."""
    p = values.reshape(-1, 64, 8, 8, 3)
    return float((p[:, :, :, 1:] - p[:, :, :, :-1]).abs().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    model = FourM.from_pretrained(args.model).eval()
    mod = model.config.modalities[NAME]
    codec = ValueCodec(NAME, mod.length, mod.value_dim)
    dsd, _ = load_token_dataset(args.tokens)
    val = TokenSamples(dsd["val"], ["caption", NAME])
    rows = [val[i] for i in range(args.num)]
    captions = hfd.load_from_disk(args.raw)["val"].select(range(args.num))["caption"]
    width = max(len(r["caption"]) for r in rows)
    ids = torch.zeros(args.num, width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["caption"])] = r["caption"]
    given = GivenTokens.sequence(ids, eos=2, pad=0)
    true = torch.stack([r[NAME] for r in rows])  # (N, L * C)
    out: dict = {"num": args.num, "true roughness": roughness(true)}
    head = model.value_heads[NAME]
    with torch.no_grad():
        enc = encoder_inputs(model.config, {"caption": given}, args.num, torch.device("cpu")).compact()
        context = enc.encode_with(model)
        pos = torch.arange(mod.length).expand(args.num, -1)
        index = model.config.modality_index(NAME)
        hidden = model.decode(
            context,
            enc.valid,
            torch.zeros_like(pos),
            torch.full_like(pos, index),
            pos,
            torch.ones_like(pos, dtype=torch.bool),
        )
        z, x0 = hidden.reshape(-1, hidden.shape[-1]), true.reshape(-1, mod.value_dim)
        grey = float(((x0 - x0.mean()) ** 2).mean())
        out["MSE of the mean grey level"] = grey
        g = torch.Generator().manual_seed(0)
        for t in (50, 200, 500, 800, 999):
            tt = torch.full((x0.shape[0],), t, dtype=torch.long)
            noise = torch.randn(x0.shape, generator=g)
            abar = head.alphas_cumprod[t]
            pred = head(head.add_noise(x0, noise, tt), tt, z)
            est = abar.sqrt() * head.add_noise(x0, noise, tt) - (1 - abar).sqrt() * pred
            out[f"x0 estimate MSE at t={t}"] = float(((est - x0) ** 2).mean())
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            plan = GenerationPlan(targets=[GenerationTarget(NAME, scheme="value", steps=20)])
            vals = generate_chained(model, {"caption": given}, plan, args.num, seed=0, autocast_dtype=dtype)[
                NAME
            ]
            out[f"DDIM 20 {label}: checker score"] = checker_scores(codec.decode(vals), captions)["score"]
            out[f"DDIM 20 {label}: roughness"] = roughness(vals.clamp(-1, 1))
    text = json.dumps(out, indent=2)
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
