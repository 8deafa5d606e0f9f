"""A plain PyTorch transformer decoder on relation_toy.py's control task (issue 16, round 20): does a
generic model learn "[colour] [left / right / top / bottom half]" -> where the object goes, which the
FourM did not? Queries: one per grid cell, 2-D sin-cos positions (as FourM's) plus a learned table;
memory: the caption's token and 1-D position embeddings; caption -> the whole grid, cross-entropy.

    python experiments/relation_toy_baseline.py --steps 1500
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import relation_toy as toy
import torch
import torch.nn.functional as F
from torch import nn

from fourm.model.pos_embed import sincos_table_2d


class Baseline(nn.Module):
    def __init__(self, dim: int, depth: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(24, dim)
        self.text_pos = nn.Parameter(torch.randn(4, dim) * 0.02)
        self.register_buffer("cell_pos", sincos_table_2d(toy.GRID, dim).float(), persistent=False)
        self.cell_learned = nn.Parameter(torch.zeros(toy.GRID * toy.GRID, dim))
        layer = nn.TransformerDecoderLayer(dim, 4, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, depth)
        self.head = nn.Linear(dim, 1 + toy.COLOURS)

    def forward(self, caption: torch.Tensor) -> torch.Tensor:  # (B, 3) -> (B, 64, 7) logits
        memory = self.tokens(caption) + self.text_pos[: caption.shape[1]]
        queries = (self.cell_pos + self.cell_learned).expand(caption.shape[0], -1, -1)
        return self.head(self.decoder(queries, memory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = [toy.absolute_scene(rng, i) for i in range(6000)]
    caps = torch.as_tensor(np.stack([s["caption"] for s in scenes]))
    grids = torch.as_tensor(np.stack([s["rgb"] for s in scenes]))
    model = Baseline(args.dim, args.depth)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    start = time.perf_counter()
    for _ in range(args.steps):
        idx = torch.randint(0, 5000, (32,))
        loss = F.cross_entropy(model(caps[idx]).flatten(0, 1), grids[idx].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    margins = []
    with torch.no_grad():
        for s in scenes[5000:5256]:
            cells = np.flatnonzero(s["box_map"] == 2)  # the named object
            colour = int(s["rgb"][cells[0]])
            flipped = s["caption"].copy()
            flipped[1] = toy.FLIPPED[int(flipped[1])]
            lp = [F.log_softmax(model(torch.as_tensor(c)[None]), -1)[0, cells, colour].sum() for c in (s["caption"], flipped)]
            margins.append(float(lp[0] - lp[1]))
    m = np.array(margins)
    print(f"plain transformer decoder, dim {args.dim}, {args.depth} blocks, {args.steps} steps "
          f"({time.perf_counter() - start:.0f} s, loss {loss.item():.3f}): margin > 0 {np.mean(m > 0):.3f}, "
          f"median {np.median(m):.2f} nats")  # fmt: skip


if __name__ == "__main__":
    main()
