"""Benchmark: how well a model names what an image shows, in its own greedy caption.

    python bench/caption_from_image.py [--model runs/finetune_ce/bundle] [--weights runs/pixels_long/model] [--num 200]

``--model`` is a model bundle, as in every command (``--bundle``: its older spelling); ``--weights`` runs
another FourM directory with the bundle's tokenizers (a FourM directory given as ``--model`` still
means that, with a deprecation warning).

Generates one greedy caption per val scene from each view of the image (rgb tokens, rgb_pixels,
both; the views the model reads), exactly as ``fourm-retrieve --via caption`` completes an image item
(:class:`fourm.retrieval.chain.ItemCompleter`), and scores it against the scene's true caption with
:func:`fourm.eval.captions.caption_accuracy` (colour / shape recall and precision as sets, (colour,
shape) pair F1, object count). Writes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from fourm.errors import FourmError
from fourm.eval.captions import caption_accuracy
from fourm.retrieval.data import RetrievalData
from fourm.retrieval.settings import RetrievalSettings, choose_model, load_pipeline, make_embedder
from fourm.utils.atomic import atomic_write_text

DEFAULT_BUNDLE = "runs/finetune_ce/bundle"
KEYS = ("color_recall", "color_precision", "shape_recall", "shape_precision", "pair_f1", "count_acc")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, metavar="DIR", help=f"model bundle (default: {DEFAULT_BUNDLE})")
    p.add_argument("--bundle", default=None, metavar="DIR", help="older spelling of --model")
    p.add_argument("--weights", default=None, metavar="DIR",
                   help="another FourM directory to use with the bundle's tokenizers")
    p.add_argument("--data", default="data/world_model", help="raw world dataset")
    p.add_argument("--split", default="val")
    p.add_argument("--num", type=int, default=200, help="first N scenes (default 200)")
    p.add_argument("--json", default="runs/caption_from_image.json")
    args = p.parse_args(argv)
    try:
        choice = choose_model(args.model, args.bundle, args.weights)
        if choice.warning:
            print(choice.warning, file=sys.stderr)
        bundle = choice.bundle or DEFAULT_BUNDLE
        pipe = load_pipeline(bundle, choice.weights)
        data = RetrievalData(args.data, args.split, args.num)
        views = [v for v in (["rgb"], ["rgb_pixels"], ["rgb", "rgb_pixels"]) if all(m in pipe.modalities for m in v)]
        items, rows = data.items(list(dict.fromkeys(m for v in views for m in v)), pipe, progress=True)
        truth = data.values("caption", rows, pipe)
        settings = RetrievalSettings(method="predicted", via=["caption"])
        completer = make_embedder(pipe, settings, *data.specials(pipe)).completer
    except FourmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report: dict = {"bundle": bundle, "model": choice.weights, "num": len(rows), "views": {}}
    for view in views:
        t0 = time.perf_counter()
        done = completer([{m: it[m] for m in view} for it in items], progress=True)
        ids = torch.nn.utils.rnn.pad_sequence([d["caption"] for d in done], batch_first=True, padding_value=completer.pad or 0)
        texts = pipe.detokenize("caption", ids)
        scores = [caption_accuracy(t, g) for t, g in zip(texts, truth)]
        means = {k: sum(s[k] for s in scores if not math.isnan(s[k])) / max(1, sum(not math.isnan(s[k]) for s in scores))
                 for k in KEYS}
        name = "+".join(view)
        report["views"][name] = {**means, "seconds": time.perf_counter() - t0, "examples": texts[:3]}
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()), flush=True)
    atomic_write_text(Path(args.json), json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
