"""Decode the same generated rgb tokens with several rgb decoders and score them with the checker.

    python experiments/decoder_on_generated.py TOKENIZER_DIR [TOKENIZER_DIR ...] [--model models/world-default]
        [--num 256] [--start 0]

The bundle generates rgb tokens once per task (caption -> rgb and caption -> bboxes -> rgb, the
bundle's generation defaults, seeds as ``bench/eval_world.py``), so every decoder is scored on
identical tokens: the differences are the decoders' alone (paired). The tokenizers must share the
bundle rgb tokenizer's codebook (e.g. ``fourm-tokenizer finetune-decoder`` outputs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fourm.eval.world import given, load_eval_pipeline, load_samples
from fourm.eval.world_scores import checker_scores
from tokenizers_zoo.image import ImageTokenizer


def generate_tokens(pipe, samples: list[dict], with_boxes: bool, batch: int = 64) -> tuple[torch.Tensor, list]:
    """rgb token ids (N, 64) for every sample's caption (and the generated boxes when ``with_boxes``)."""
    tokens, boxes = [], []
    for b, start in enumerate(tqdm(range(0, len(samples), batch), desc="generate")):
        chunk = samples[start : start + batch]
        conds = {"caption": given(pipe, "caption", [s["caption"] for s in chunk])}
        targets = [pipe.default_target("bboxes"), pipe.default_target("rgb")] if with_boxes else [pipe.default_target("rgb")]
        result = pipe.generate(conds, targets, num_samples=len(chunk), seed=b, progress=False, decode=with_boxes)
        tokens.append(result.tokens["rgb"])
        boxes += result.values.get("bboxes", [None] * len(chunk))
    return torch.cat(tokens), boxes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tokenizers", nargs="+")
    parser.add_argument("--model", default="models/world-default")
    parser.add_argument("--num", type=int, default=256)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--cache", default=None, help="a .pt file: reuse its generated tokens, or write them there")
    args = parser.parse_args()
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe, start=args.start)
    captions = [s["caption"] for s in samples]
    key = {"model": args.model, "num": args.num, "start": args.start}
    cached = torch.load(args.cache, weights_only=False) if args.cache and Path(args.cache).is_file() else None
    if cached is not None and cached["key"] == key:
        tasks = cached["tasks"]
    else:
        tasks = {name: generate_tokens(pipe, samples, with_boxes) for name, with_boxes in
                 (("caption_to_rgb", False), ("caption_to_bboxes_to_rgb", True))}  # fmt: skip
        if args.cache:
            torch.save({"key": key, "tasks": tasks}, args.cache)
    for path in args.tokenizers:
        tok = ImageTokenizer.from_pretrained(path).eval()
        row = {"tokenizer": path}
        for name, (ids, boxes) in tasks.items():
            with torch.no_grad():
                images = np.concatenate([tok.postprocess(tok.decode(ids[i : i + 64])) for i in range(0, len(ids), 64)])
            scores = checker_scores(list(images), captions, boxes if boxes[0] is not None else None)
            row[name] = {k: round(v, 4) for k, v in scores.items() if k in ("presence", "shape_acc", "object_acc",
                                                                            "relation_acc", "extra_objects", "score", "box_iou")}  # fmt: skip
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
