"""Bisect FourM vs the plain decoder on relation_toy.py's control task (issue 16, round 21): FourM's
model trained by a hand-written loop on hand-built batches (caption -> the whole grid), so the
training loop, data and masking are out of the picture; switches swap parts of the model.

    python experiments/relation_toy_bisect.py --steps 1500 [--position-scale 1.0] [--no-context-proj]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import relation_toy as toy
import torch
import torch.nn.functional as F

from fourm.core.batch import MultimodalBatch
from fourm.model import FourM
from fourm.model.config import FourMConfig, ModalityConfig


def batch_for(caps: torch.Tensor, grids: torch.Tensor, rgb: int, cap: int, given: torch.Tensor | None = None) -> MultimodalBatch:
    """caption (B, L) [+ the grid's cells ``given`` (B, k) as rgb inputs] -> the whole grid (B, 64)."""
    b, n, g = caps.shape[0], caps.shape[1], grids.shape[1]
    tokens, modality, position = caps, torch.full((b, n), cap), torch.arange(n).expand(b, n)
    if given is not None:
        tokens = torch.cat([tokens, grids.gather(1, given)], 1)
        modality = torch.cat([modality, torch.full(given.shape, rgb)], 1)
        position = torch.cat([position, given], 1)
    return MultimodalBatch(
        enc_tokens=tokens, enc_modality=modality, enc_position=position,
        enc_valid=torch.ones(tokens.shape, dtype=torch.bool), dec_input=torch.zeros_like(grids), dec_target=grids,
        dec_modality=torch.full((b, g), rgb), dec_position=torch.arange(g).expand(b, g),
        dec_valid=torch.ones(b, g, dtype=torch.bool),
    )  # fmt: skip


class ReluMLP(torch.nn.Module):
    """nn.TransformerDecoderLayer's feed-forward: Linear(D, 4D) + ReLU + Linear(4D, D), with biases."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.ReLU(), torch.nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _sdpa(model: FourM) -> None:
    from fourm.model.attention import set_cpu_attention

    set_cpu_attention("sdpa")


def _relu_mlp(model: FourM) -> None:
    for block in [*model.encoder, *model.decoder]:
        block.mlp = ReluMLP(model.config.dim)


def _no_self_attention(model: FourM) -> None:
    import fourm.model.fourm as fm

    fm.decoder_attention_mask = lambda modality, position, valid, *a, **k: torch.eye(
        modality.shape[1], dtype=torch.bool)[None, None].expand(modality.shape[0], 1, -1, -1)  # fmt: skip


def _unit_tokens(model: FourM) -> None:
    torch.nn.init.normal_(model.embeddings.enc_tokens, std=1.0)  # token rows only (not heads, mask, modality)


PATCHES = {"unit_tokens": _unit_tokens, "sdpa": _sdpa, "relu_mlp": _relu_mlp, "no_self_attention": _no_self_attention}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--position-scale", type=float, default=0.25)
    parser.add_argument("--override", action="append", default=[], help="FourMConfig field=value (yaml value)")
    parser.add_argument("--learned-positions", action="store_true", help="rgb positions: learned (per side)")
    parser.add_argument("--patch", action="append", default=[], choices=sorted(PATCHES), help="swap a part of the model")
    parser.add_argument("--task", choices=("absolute", "relation"), default="absolute",
                        help="relation: every other step also gives object A's cells; probe: B's cells with A given")
    args = parser.parse_args()
    import yaml

    torch.manual_seed(0)
    mods = {
        "rgb": ModalityConfig("image", 1 + toy.COLOURS, toy.GRID * toy.GRID,
                              positions="learned" if args.learned_positions else "sincos"),
        "caption": ModalityConfig("sequence", 24, 6),
    }
    over = {"dim": 128, "enc_depth": 2, "dec_depth": 2, "num_heads": 4, "position_scale": args.position_scale}
    over.update({k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.override)})
    config = FourMConfig.preset("tiny", mods, **over)
    model = FourM(config)
    for name in args.patch:
        PATCHES[name](model)
    rgb, cap = config.modality_index("rgb"), config.modality_index("caption")
    relation = args.task == "relation"
    scenes, caps, grids, a_cells = toy.hand_data(args.task)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    start = time.perf_counter()
    for step in range(args.steps):
        idx = torch.randint(0, 5000, (32,))
        given = a_cells[idx] if relation and step % 2 else None
        loss, _ = model.loss(batch_for(caps[idx], grids[idx], rgb, cap, given))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    margins = []
    with torch.no_grad():
        for s, cells, colour, flipped, a in toy.held_out(scenes):
            two = torch.as_tensor(np.stack([s["caption"], flipped]))
            given = torch.as_tensor(np.stack([a] * 2)) if relation else None
            logits = model(batch_for(two, torch.as_tensor(np.stack([s["rgb"]] * 2)), rgb, cap, given))["rgb"].view(2, -1, 7)
            lp = F.log_softmax(logits.float(), -1)[:, cells, colour].sum(1)
            margins.append(float(lp[0] - lp[1]))
    m = np.array(margins)
    print(f"{args.task}: FourM, hand loop, {over}{', learned rgb positions' if args.learned_positions else ''}{''.join(', ' + p for p in args.patch)}, {args.steps} steps ({time.perf_counter() - start:.0f} s, loss {loss.item():.3f}): "
          f"margin > 0 {np.mean(m > 0):.3f}, median {np.median(m):.2f} nats")  # fmt: skip


if __name__ == "__main__":
    main()
