"""How much does one rgb code say about the shape it covers? On a token dataset and the raw scenes it
was made from (same ids, same order), every patch with at least 4 object pixels gets its shape (the
patch's main semseg class) and colour (the palette colour nearest its object pixels' mean), then:

    H(code | colour), H(code | colour, shape), I(code; shape | colour)   (bits)
    distinct codes per (shape, colour), and the share of object patches whose code another shape of
    the same colour also uses

Round 18 of issue 16 (docs/experiments/default_model.md).

    python experiments/code_shape_information.py --tokens data/world_model_tokens [--raw data/world_model] [--num 3000]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from datasets import load_from_disk

from fourm.data.world.palette import COLORS


def entropy(rows: np.ndarray) -> float:
    """Entropy (bits) of the empirical distribution of the rows."""
    _, counts = np.unique(rows, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def object_patches(raw, tokens, grid: int) -> np.ndarray:
    """(N, 3) rows (shape class, colour index, code) of the patches with >= 4 object pixels."""
    palette = np.array(list(COLORS.values()), float)
    rows = []
    for r, t in zip(raw, tokens):
        if r["id"] != t["id"]:
            raise SystemExit(f"error: raw scene {r['id']} and token row {t['id']} differ: give the matching datasets")
        rgb, seg = np.asarray(r["rgb"], float), np.asarray(r["semseg"])
        codes = np.asarray(t["rgb"]).reshape(grid, grid)
        p = seg.shape[0] // grid
        for i in range(grid):
            for j in range(grid):
                s = seg[i * p : (i + 1) * p, j * p : (j + 1) * p]
                m = s > 0
                if m.sum() < 4:
                    continue
                mean = rgb[i * p : (i + 1) * p, j * p : (j + 1) * p][m].mean(0)
                rows.append((np.bincount(s[m]).argmax(), np.argmin(((palette - mean) ** 2).sum(1)), codes[i, j]))
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", required=True, help="token dataset (fourm-data tokenize output)")
    parser.add_argument("--raw", default="data/world_model", help="the raw world dataset it was made from")
    parser.add_argument("--split", default="train")
    parser.add_argument("--num", type=int, default=3000, help="scenes (default: 3000)")
    args = parser.parse_args()
    raw = load_from_disk(f"{args.raw}/{args.split}")
    tokens = load_from_disk(f"{args.tokens}/{args.split}")
    n = min(args.num, len(raw), len(tokens))
    grid = int(round(len(tokens[0]["rgb"]) ** 0.5))
    a = object_patches(raw.select(range(n)), tokens.select(range(n)), grid)
    h_colour = entropy(a[:, [1, 2]]) - entropy(a[:, [1]])
    h_both = entropy(a) - entropy(a[:, [0, 1]])
    groups: dict[tuple[int, int], set[int]] = defaultdict(set)
    for s, c, k in a:
        groups[(s, c)].add(k)
    shared = np.mean([any(k in ks for (s2, c2), ks in groups.items() if c2 == c and s2 != s) for s, c, k in a])
    print(f"{args.tokens}: {len(a)} object patches of {n} scenes, {len(np.unique(a[:, 2]))} distinct codes")
    print(f"H(code | colour) {h_colour:.2f} bits, H(code | colour, shape) {h_both:.2f}, "
          f"I(code; shape | colour) {h_colour - h_both:.2f} (H(shape | colour) {entropy(a[:, :2]) - entropy(a[:, [1]]):.2f})")  # fmt: skip
    print(f"distinct codes per (shape, colour): median {int(np.median([len(v) for v in groups.values()]))}; "
          f"object patches whose code another shape of the same colour also uses: {shared:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
