"""Once one object is drawn, does a bundle put the other where the caption's relation says? (issue 16,
round 20, docs/experiments/default_model.md)

Two-object world val scenes whose caption states one left/right/above/below relation "A rel B". With
c the caption, c' the caption with the relation flipped, the encoder given c (or c') and the scene's
true rgb tokens on A's box alone (cells that B's box does not touch), the margin is

    log p(rgb tokens on B's box | c, A) - log p(rgb tokens on B's box | c', A)      (nats)

what MaskGIT asks once it has drawn one object. Also with nothing drawn, and with B drawn and A
scored. A model that places B by the relation has positive margins in (nearly) every scene.
``--swap colour`` (the control): c' names B in another colour instead (the relation kept), which a
model that reads the caption at all must notice in B's tokens.

    python experiments/relation_given_object.py --model models/world-default --num 128 [--swap colour]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from fourm.data.world.palette import COLORS as PALETTE
from fourm.eval.captions import parse_caption
from fourm.eval.world import given, load_eval_pipeline, load_samples
from fourm.generation.conditions import GivenTokens, encoder_inputs
from fourm.generation.decoding import TargetHead

COLORS = list(PALETTE)
FLIP = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below", "below": "above"}


def box_cells(box: list[float], grid: int) -> set[int]:
    """Token cells (row-major on a grid x grid layout) that the normalised box [x0, y0, x1, y1] touches."""
    x0, y0, x1, y1 = box
    rows = [r for r in range(grid) if (r + 1) / grid > y0 and r / grid < y1]
    cols = [c for c in range(grid) if (c + 1) / grid > x0 and c / grid < x1]
    return {r * grid + c for r in rows for c in cols}


def two_object_cases(samples: list[dict], grid: int, swap: str = "relation") -> list[tuple[dict, str, list[int], list[int]]]:
    """(sample, altered caption, A's cells, B's cells) of the scenes with two boxes and one 2-D relation;
    ``swap``: "relation" flips it, "colour" names B (everywhere) in the next palette colour that A has not."""
    out = []
    for s in samples:
        parsed = parse_caption(s["caption"])
        if len(s["bboxes"]) != 2 or len(parsed.relations) != 1 or parsed.relations[0].relation not in FLIP:
            continue
        rel = parsed.relations[0]
        boxes = {tuple(b["label"].split()[-2:]): b["box"] for b in s["bboxes"]}  # (colour, shape) -> box
        if rel.subject not in boxes or rel.object not in boxes:
            continue
        a, b = box_cells(boxes[rel.subject], grid), box_cells(boxes[rel.object], grid)
        text = s["caption"].lower()
        if swap == "relation":
            flipped = text.replace(rel.relation, FLIP[rel.relation])
        else:
            colour = rel.object[0]
            other = next(c for c in COLORS[COLORS.index(colour) + 1 :] + COLORS if c not in (colour, rel.subject[0]))
            flipped = text.replace(f"{colour} {rel.object[1]}", f"{other} {rel.object[1]}")
        if a - b and b - a and flipped != text:
            out.append((s, flipped, sorted(a - b), sorted(b - a)))
    return out


def log_prob(pipe, caption: str, rgb: torch.Tensor, shown: list[int], scored: list[int]) -> float:
    """log p(rgb[scored] | caption, rgb[shown]), summed over the scored tokens (one scene)."""
    model = pipe.model
    conditions = {"caption": given(pipe, "caption", [caption])}
    if shown:
        conditions["rgb"] = GivenTokens.at(rgb[None, shown], torch.tensor([shown]))
    enc = encoder_inputs(model.config, conditions, 1, "cpu").compact()
    tokens, positions = rgb[None, scored], torch.tensor([scored])
    hidden = model.decode(
        enc.encode_with(model), enc.valid, torch.zeros_like(tokens),
        torch.full_like(tokens, model.config.modality_index("rgb")), positions, torch.ones_like(tokens, dtype=torch.bool),
    )  # fmt: skip
    logp = F.log_softmax(TargetHead(model, "rgb")(hidden).float(), dim=-1)
    return float(logp.gather(-1, tokens[..., None]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--num", type=int, default=128, help="two-object scenes (default: 128)")
    parser.add_argument("--swap", choices=("relation", "colour"), default="relation", help="what c' changes (default: relation)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    pipe = load_eval_pipeline(args.model)
    grid = int(round(pipe.model.config.modalities["rgb"].length ** 0.5))
    cases = two_object_cases(load_samples(None, 8 * args.num, "val", pipe), grid, args.swap)[: args.num]
    probes = {"A drawn, B scored": [], "nothing drawn, B scored": [], "B drawn, A scored": []}
    with torch.no_grad():
        for s, flipped, a, b in cases:
            rgb = pipe.tokenize("rgb", [s["rgb"]])[0]
            caption = s["caption"].lower()
            for key, shown, scored in (("A drawn, B scored", a, b), ("nothing drawn, B scored", [], b), ("B drawn, A scored", b, a)):
                probes[key].append(log_prob(pipe, caption, rgb, shown, scored) - log_prob(pipe, flipped, rgb, shown, scored))
    what = "relation flipped" if args.swap == "relation" else "B named in another colour"
    print(f"{args.model or 'models/world-default'}: {len(cases)} two-object val scenes, {what}")
    for key, margins in probes.items():
        m = np.array(margins)
        print(f"  {key:<26} margin > 0 {np.mean(m > 0):.3f}, mean {m.mean():6.2f}, median {np.median(m):6.2f} nats")


if __name__ == "__main__":
    main()
