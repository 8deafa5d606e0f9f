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

from fourm.model.pos_embed import sincos_table_1d, sincos_table_2d


class Baseline(nn.Module):
    def __init__(self, dim: int, depth: int, learned: bool = True, encoder: bool = False, fourm_embed: bool = False,
                 query_scale: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.tokens = nn.Embedding(24, dim)
        self.text_pos = nn.Parameter(torch.randn(5, dim) * 0.02)
        if fourm_embed:  # FourM's: token rows at std 0.02, fixed 1-D sin-cos text positions x 0.25
            nn.init.normal_(self.tokens.weight, std=0.02)
            self.text_pos = nn.Parameter(sincos_table_1d(5, dim) * 0.25, requires_grad=False)
        self.register_buffer("cell_pos", sincos_table_2d(toy.GRID, dim).float() * query_scale, persistent=False)
        self.encoder = None
        if encoder:  # FourM's: the caption through pre-norm encoder blocks and a final norm
            enc = nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
            self.encoder = nn.Sequential(nn.TransformerEncoder(enc, depth), nn.LayerNorm(dim))
        self.cell_learned = nn.Parameter(torch.zeros(toy.GRID * toy.GRID, dim), requires_grad=learned)
        layer = nn.TransformerDecoderLayer(dim, 4, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, depth)
        self.head = nn.Linear(dim, 1 + toy.COLOURS)
        self.cell_tokens = nn.Embedding(1 + toy.COLOURS, dim)  # given cells (the relation task's object A)

    def forward(self, caption: torch.Tensor, cells: torch.Tensor | None = None, colours: torch.Tensor | None = None) -> torch.Tensor:
        """caption (B, L) [+ given cells (B, k) and their colours (B, k)] -> (B, 64, 7) logits."""
        memory = self.tokens(caption) + self.text_pos[: caption.shape[1]]
        if cells is not None:
            memory = torch.cat([memory, self.cell_tokens(colours) + self.cell_pos[cells]], dim=1)
        if self.encoder is not None:
            memory = self.encoder(memory)
        queries = (self.cell_pos + self.cell_learned).expand(caption.shape[0], -1, -1)
        return self.head(self.decoder(queries, memory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--no-learned", action="store_true", help="the fixed sin-cos cell positions alone")
    parser.add_argument("--encoder", action="store_true", help="the caption through encoder blocks first (as FourM)")
    parser.add_argument("--fourm-embed", action="store_true", help="FourM's caption embedding: std 0.02 tokens, sin-cos x 0.25")
    parser.add_argument("--query-scale", type=float, default=1.0, help="scale of the cells' sin-cos positions")
    parser.add_argument("--task", choices=("absolute", "relation"), default="absolute",
                        help="relation: half the steps also give object A's cells; probe: B's cells with A given")
    args = parser.parse_args()
    torch.manual_seed(0)
    relation = args.task == "relation"
    scenes, caps, grids, a_cells = toy.hand_data(args.task)
    model = Baseline(args.dim, args.depth, not args.no_learned, args.encoder, args.fourm_embed, args.query_scale)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    start = time.perf_counter()
    for _ in range(args.steps):
        idx = torch.randint(0, 5000, (32,))
        given = (a_cells[idx], grids[idx].gather(1, a_cells[idx])) if relation and _ % 2 else (None, None)
        loss = F.cross_entropy(model(caps[idx], *given).flatten(0, 1), grids[idx].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    margins = []
    with torch.no_grad():
        for s, cells, colour, flipped, a in toy.held_out(scenes):  # cells: the named object (relation: B)
            a = torch.as_tensor(a)[None]
            given = (a, torch.as_tensor(s["rgb"])[None, a[0]]) if relation else (None, None)
            lp = [F.log_softmax(model(torch.as_tensor(c)[None], *given), -1)[0, cells, colour].sum() for c in (s["caption"], flipped)]
            margins.append(float(lp[0] - lp[1]))
    m = np.array(margins)
    flags = [f for f, on in (("sin-cos cells only", args.no_learned), ("encoder", args.encoder),
                                ("FourM caption embedding", args.fourm_embed), (f"cells x {args.query_scale}", args.query_scale != 1)) if on]
    print(f"{args.task}: plain transformer decoder{''.join(', ' + f for f in flags)}, dim {args.dim}, {args.depth} blocks, {args.steps} steps "
          f"({time.perf_counter() - start:.0f} s, loss {loss.item():.3f}): margin > 0 {np.mean(m > 0):.3f}, "
          f"median {np.median(m):.2f} nats")  # fmt: skip


if __name__ == "__main__":
    main()
