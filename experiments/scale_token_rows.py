"""Scale a trained FourM's encoder token rows of some modalities (issue 16, round 21,
docs/experiments/default_model.md): the shipped model's caption / bboxes rows never left their init
norm (0.32, beside position rows of 2.83), the toy's failure; scaled up they are read again, and
training on relearns what they mean.

    python experiments/scale_token_rows.py --model models/world-default/model --out runs/r21_scaled/init \
        --factor 16 caption bboxes metadata color_palette
"""

from __future__ import annotations

import argparse

import torch

from fourm.model import FourM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--factor", type=float, required=True)
    parser.add_argument("modalities", nargs="+")
    args = parser.parse_args()
    model = FourM.from_pretrained(args.model)
    sizes = [m.table_rows for m in model.config.modalities.values()]
    starts = dict(zip(model.config.modalities, torch.tensor([0] + sizes[:-1]).cumsum(0).tolist()))
    table = model.embeddings.enc_tokens.data
    for name in args.modalities:
        rows = slice(starts[name], starts[name] + model.config.modalities[name].table_rows)
        before = table[rows].float().norm(dim=1).median().item()
        table[rows] *= args.factor
        print(f"{name}: median row norm {before:.2f} -> {table[rows].float().norm(dim=1).median().item():.2f}")
    model.save_pretrained(args.out)


if __name__ == "__main__":
    main()
