"""Shape accuracy through rgb tokenizers (the eval's tokenizer ceiling), for decoder fine-tunes.

    python experiments/rgb_decoder_shapes.py TOKENIZER_DIR [TOKENIZER_DIR ...] [--num 256]

World val scenes (seed 1, as ``bench/eval_world.py``) -> tokens -> decoded, scored by the rgb
checker against the captions and boxes; also PSNR and whether the tokens equal the first tokenizer's.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from fourm.data.raw_dataset import VAL_INDEX_OFFSET
from fourm.data.world import WorldConfig, render_sample
from fourm.eval.world_scores import checker_scores, psnr
from tokenizers_zoo.image import ImageTokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tokenizers", nargs="+")
    parser.add_argument("--num", type=int, default=256)
    args = parser.parse_args()
    scenes = [render_sample(VAL_INDEX_OFFSET + j, seed=1, config=WorldConfig(size=64)) for j in range(args.num)]
    images = np.stack([s["rgb"] for s in scenes])
    first_tokens = None
    for path in args.tokenizers:
        tok = ImageTokenizer.from_pretrained(path).eval()
        recon, tokens = [], []
        with torch.no_grad():
            for start in range(0, len(images), 64):
                ids = tok.encode(tok.preprocess(images[start : start + 64]))
                tokens.append(ids)
                recon += list(tok.postprocess(tok.decode(ids)))
        tokens = torch.cat(tokens)
        first_tokens = tokens if first_tokens is None else first_tokens
        scores = checker_scores(recon, [s["caption"] for s in scenes], [s["bboxes"] for s in scenes])
        mean_psnr = float(np.mean([psnr(r, s["rgb"]) for r, s in zip(recon, scenes)]))
        print(json.dumps({"tokenizer": path, "same_tokens": bool(torch.equal(tokens, first_tokens)), "psnr": round(mean_psnr, 2),
                          **{k: round(v, 4) for k, v in scores.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
