"""Can a FourM learn "A is left of B" at all? A clean toy task (issue 16, round 20,
docs/experiments/default_model.md).

Toy scenes on an 8 x 8 token grid: ground (token 0) and two 2 x 2 objects of two of 6 colours (tokens
1-6) placed at random but apart, so that one relation holds on one axis; the caption is
[colour A] [relation] [colour B] [EOS] (relation: left of / right of / above / below, chosen among
those that hold); a box map marks the objects (1 = A, 2 = B). Training mixture: caption + A's cells ->
the rest (masking ``reveal_objects``), caption -> the whole grid, 4M's all-to-all. After training, on
held-out scenes: with A's cells given, where does the model put B: the share of scenes whose expected
position of B's colour moves towards the side the relation names when the caption states it rather
than its opposite, and the margin log p(B's cells | c, A) -
log p(B's cells | c', A) with the relation flipped in c'.

    python experiments/relation_toy.py --steps 1500 [--position-scale 1.0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fourm.data.masking.spans import SequenceSpecialTokens
from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset
from fourm.generation.conditions import GivenTokens, encoder_inputs
from fourm.generation.decoding import TargetHead
from fourm.model import FourM
from fourm.training import train
from fourm.training.config import TrainConfig

GRID, COLOURS = 8, 6
SPECIALS = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 11)))
COLOUR_WORD = 11  # caption ids 11-16: colours; 17-20: left of, right of, above, below
RELATIONS = {17: "left of", 18: "right of", 19: "above", 20: "below"}
WORD_FIRST = False  # --word-first (the absolute task): the position word before the colour
FLIPPED = {17: 18, 18: 17, 19: 20, 20: 19}
INFO = TokenDatasetInfo(
    modalities={
        "rgb": ModalityTokens(kind="image", vocab_size=1 + COLOURS, length=GRID * GRID),
        "caption": ModalityTokens(kind="sequence", vocab_size=24, length=6),
        "box_map": ModalityTokens(kind="image", vocab_size=3, length=GRID * GRID, input_only=True),
    },
    specials=SPECIALS,
)


def absolute_scene(rng: np.random.Generator, index: int) -> dict:
    """The control task: one object in the half a word names, "[colour] [left / right / top / bottom
    half]", and a second object elsewhere that the caption does not name (the same relation ids mean
    the halves: 17 left, 18 right, 19 top, 20 bottom)."""
    word = int(rng.integers(17, 21))
    lo, hi = {17: ((0, 6), (0, 2)), 18: ((0, 6), (4, 6)), 19: ((0, 2), (0, 6)), 20: ((4, 6), (0, 6))}[word]
    ra, ca = int(rng.integers(lo[0], lo[1] + 1)), int(rng.integers(hi[0], hi[1] + 1))
    while True:
        rb, cb = rng.integers(0, GRID - 1, 2)
        if abs(rb - ra) >= 2 or abs(cb - ca) >= 2:
            break
    colours = rng.choice(COLOURS, 2, replace=False)
    rgb, box_map = np.zeros((GRID, GRID), np.int64), np.zeros((GRID, GRID), np.int64)
    for (r, c), colour, label in (((rb, cb), colours[1], 1), ((ra, ca), colours[0], 2)):
        rgb[r : r + 2, c : c + 2], box_map[r : r + 2, c : c + 2] = 1 + colour, label
    caption = np.array([COLOUR_WORD + colours[0], word, SPECIALS.eos])
    if WORD_FIRST:  # "[left half] [colour]": is it where the word stands?
        caption = caption[[1, 0, 2]]
    return {"id": f"toy-{index:06d}", "rgb": rgb.reshape(-1), "caption": caption, "box_map": box_map.reshape(-1)}


def scene(rng: np.random.Generator, index: int) -> dict:
    """One toy scene {id, rgb (64,), caption (4,), box_map (64,)}."""
    while True:
        (ra, ca), (rb, cb) = rng.integers(0, GRID - 1, (2, 2))
        holds = [r for r, ok in ((17, ca + 2 <= cb), (18, cb + 2 <= ca), (19, ra + 2 <= rb), (20, rb + 2 <= ra)) if ok]
        if holds:
            break
    colours = rng.choice(COLOURS, 2, replace=False)
    rgb, box_map = np.zeros((GRID, GRID), np.int64), np.zeros((GRID, GRID), np.int64)
    for (r, c), colour, label in (((ra, ca), colours[0], 1), ((rb, cb), colours[1], 2)):
        rgb[r : r + 2, c : c + 2], box_map[r : r + 2, c : c + 2] = 1 + colour, label
    relation = int(rng.choice(holds))
    caption = np.array([COLOUR_WORD + colours[0], relation, COLOUR_WORD + colours[1], SPECIALS.eos])
    return {"id": f"toy-{index:06d}", "rgb": rgb.reshape(-1), "caption": caption, "box_map": box_map.reshape(-1)}


def mixture(plain: bool = False, all_to_all: bool = True) -> dict:
    """The toy's masking config; ``plain``: caption -> the whole grid alone (as the plain baseline trains);
    ``all_to_all`` False: without 4M's all-to-all entry (the hand loop's two tasks)."""
    if plain:
        entry = {"name": "caption_to_rgb", "input_alpha": 0.0, "input_alphas": {"caption": 1.0}, "target_alpha": 0.0,
                 "target_alphas": {"rgb": 1.0}}  # fmt: skip
        return {"input_budget": 72, "target_budget": 64, "span_probability": 0.0, "mixture": [entry]}
    return {
        "input_budget": 72, "target_budget": 64, "span_probability": 0.0,
        "mixture": [
            {"name": "caption_objects_to_rgb", "weight": 0.5, "input_alpha": 0.0, "input_alphas": {"caption": 1.0, "rgb": 1.0},
             "target_alpha": 0.0, "target_alphas": {"rgb": 1.0}, "reveal_objects": {"rgb": "box_map"}},
            {"name": "caption_to_rgb", "weight": 0.25, "input_alpha": 0.0, "input_alphas": {"caption": 1.0},
             "target_alpha": 0.0, "target_alphas": {"rgb": 1.0}},
            {"name": "all_to_all", "weight": 0.25, "input_alpha": 1.0, "target_alpha": 1.0, "input_alphas": {"box_map": 0.0}},
        ][: 3 if all_to_all else 2],
    }  # fmt: skip


def toy_scenes(task: str, seed: int = 0) -> list[dict]:
    """6,000 scenes of ``task`` ("relation" or "absolute"); the first 5,000 train, the rest are held out."""
    rng = np.random.default_rng(seed)
    make = scene if task == "relation" else absolute_scene
    return [make(rng, i) for i in range(6000)]


def hand_data(task: str) -> tuple[list[dict], torch.Tensor, torch.Tensor, torch.Tensor]:
    """The hand loops' data (relation_toy_baseline.py, relation_toy_bisect.py): :func:`toy_scenes` of
    ``task`` (seed 0), their captions (N, L), grids (N, 64) and object A's cells (N, 4)."""
    scenes = toy_scenes(task)
    caps = torch.as_tensor(np.stack([s["caption"] for s in scenes]))
    grids = torch.as_tensor(np.stack([s["rgb"] for s in scenes]))
    a_cells = torch.as_tensor(np.stack([np.flatnonzero(s["box_map"] == 1) for s in scenes]))
    return scenes, caps, grids, a_cells


def held_out(scenes: list[dict]):
    """The hand loops' 256 held-out cases: (scene, the named object's cells, its colour, the caption with
    the relation / half flipped, A's cells)."""
    for s in scenes[5000:5256]:
        cells = np.flatnonzero(s["box_map"] == 2)
        flipped = s["caption"].copy()
        flipped[1] = FLIPPED[int(flipped[1])]
        yield s, cells, int(s["rgb"][cells[0]]), flipped, np.flatnonzero(s["box_map"] == 1)


@torch.no_grad()
def probe(model: FourM, scenes: list[dict], task: str = "relation") -> tuple[float, float, float]:
    """(share of scenes where B's expected position moves to the named side when the relation is read
    rather than flipped, share of positive margins, median margin in nats), A's cells given."""
    idx = model.config.modality_index("rgb")
    side, margins = [], []
    rows, cols = np.divmod(np.arange(GRID * GRID), GRID)
    for s in scenes:
        a = np.flatnonzero(s["box_map"] == 1).tolist()
        b = np.flatnonzero(s["box_map"] == 2).tolist()
        rest = [i for i in range(GRID * GRID) if i not in a]
        rgb = torch.as_tensor(s["rgb"])
        logps = []
        w = 0 if WORD_FIRST else 1  # where the relation / position word stands
        for rel in (int(s["caption"][w]), FLIPPED[int(s["caption"][w])]):
            caption = torch.as_tensor(s["caption"]).clone()
            caption[w] = rel
            conds = {"caption": GivenTokens.at(caption[None]), "rgb": GivenTokens.at(rgb[None, a], torch.tensor([a]))}
            enc = encoder_inputs(model.config, conds, 1, "cpu").compact()
            tokens = rgb[None, rest]
            hidden = model.decode(enc.encode_with(model), enc.valid, torch.zeros_like(tokens), torch.full_like(tokens, idx),
                                  torch.tensor([rest]), torch.ones_like(tokens, dtype=torch.bool))  # fmt: skip
            logps.append(F.log_softmax(TargetHead(model, "rgb")(hidden).float(), -1)[0])  # (n, V)
        colour_b = int(s["rgb"][b[0]])
        at = np.array(rest)
        centre = []  # where the model expects B's colour (every cell but A's), under c and under c'
        for lp in logps:
            p_b = lp[:, colour_b].exp().numpy()
            centre.append(((rows[at] * p_b).sum() / p_b.sum(), (cols[at] * p_b).sum() / p_b.sum()))
        (y, x), (y2, x2) = centre
        rel = int(s["caption"][w])  # "A left of B": B further right under c than under "A right of B"
        if task == "absolute":  # "left half": B further left under c than under "right half"
            side.append({17: x < x2, 18: x > x2, 19: y < y2, 20: y > y2}[rel])
        else:
            side.append({17: x > x2, 18: x < x2, 19: y > y2, 20: y < y2}[rel])
        pick = [rest.index(i) for i in b]
        gain = logps[0][pick, colour_b].sum() - logps[1][pick, colour_b].sum()
        margins.append(float(gain))
    m = np.array(margins)
    return float(np.mean(side)), float(np.mean(m > 0)), float(np.median(m))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--position-scale", type=float, default=0.25, help="the shipped model's 0.25 by default")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2, help="encoder and decoder blocks")
    parser.add_argument("--init-std", type=float, default=0.02, help="std of the token embeddings at init (FourMConfig.init_std)")
    parser.add_argument("--token-init-std", type=float, default=None, help="std of the token tables at init (FourMConfig.token_init_std)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=("relation", "absolute"), default="relation",
                        help="absolute: the control, one object in the half a word names (B is that object, "
                        "A the unnamed one)")
    parser.add_argument("--word-first", action="store_true", help="absolute task: the position word before the colour")
    parser.add_argument("--plain", action="store_true", help="train on caption -> the whole grid alone")
    parser.add_argument("--no-all-to-all", action="store_true", help="without the all-to-all mixture entry")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    args = parser.parse_args()
    global WORD_FIRST
    WORD_FIRST = args.word_first
    scenes = toy_scenes(args.task, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_token_dataset(Path(tmp) / "toy", {"train": scenes[:5000], "val": scenes[5000:]}, INFO)
        (Path(tmp) / "mix.yaml").write_text(__import__("json").dumps(mixture(args.plain, not args.no_all_to_all)))
        overrides = {"dim": args.dim, "enc_depth": args.depth, "dec_depth": args.depth, "num_heads": 4,
                     "position_scale": args.position_scale, "init_std": args.init_std,
                     "token_init_std": args.token_init_std}  # fmt: skip
        cfg = TrainConfig.from_dict({
            "data": {"datasets": [{"path": str(data)}], "val_samples": 64},
            "model": {"preset": "tiny", "overrides": overrides},
            "masking": {"train": str(Path(tmp) / "mix.yaml"), "eval": str(Path(tmp) / "mix.yaml")},
            "optim": {"lr": args.lr, "min_lr": 1e-5, "warmup_steps": 100},
            "batch_size": 32, "steps": args.steps, "precision": args.precision, "log_every": 100, "eval_every": 0,
            "checkpoint_every": 0, "tensorboard": False, "output_dir": str(Path(tmp) / "run"), "num_workers": 0, "seed": args.seed,
        })  # fmt: skip
        start = time.perf_counter()
        result = train(cfg)
        model = FourM.from_pretrained(result.final_model).eval()
    on_side, positive, median = probe(model, scenes[5000:5256], args.task)
    print(f"{args.task}{' (word first)' if args.word_first else ''}{' (caption -> grid alone)' if args.plain else ''}{' (no all-to-all)' if args.no_all_to_all else ''}, {args.precision}: position scale {args.position_scale}, init std {args.init_std}, token init std {args.token_init_std}, lr {args.lr}, dim {args.dim}, {args.depth}+{args.depth} blocks, "
          f"{args.steps} steps ({time.perf_counter() - start:.0f} s): B moves to the named side {on_side:.3f} "
          f"(chance 0.5), margin > 0 {positive:.3f}, median {median:.2f} nats")  # fmt: skip


if __name__ == "__main__":
    main()
