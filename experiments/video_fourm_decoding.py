"""Video experiment (docs/experiments/video.md): MaskGIT decoding settings of the trained video FourM on
val captions, scored on the generated first frames by the rgb checker (the model is not retrained).

    OMP_NUM_THREADS=1 python experiments/video_fourm_decoding.py --bundle runs/video_fourm/bundle \
        --raw runs/video/world_video --out runs/video_fourm/decoding.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from fourm.data.raw_dataset import load_raw_dataset
from fourm.eval.world_scores import checker_scores
from fourm.generation.pipeline import FourMPipeline

SETTINGS = {  # name -> GenerationTarget fields of the video target
    "maskgit 16 steps (default sampling)": {"steps": 16},
    "maskgit 16 steps, guidance 3": {"steps": 16, "guidance_scale": 3.0},
    "maskgit 16 steps, temperature 1.5": {"steps": 16, "temperature": 1.5},
    "maskgit 32 steps, no confidence noise": {"steps": 32, "confidence_noise": 0.0},
    "roar 16 steps": {"scheme": "roar", "steps": 16},
    "roar 16 steps, guidance 3": {"scheme": "roar", "steps": 16, "guidance_scale": 3.0},
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--raw", required=True)
    p.add_argument("--num", type=int, default=32)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    pipe = FourMPipeline.from_pretrained(args.bundle)
    val = load_raw_dataset(args.raw)["val"]
    captions = [val[i]["caption"] for i in range(args.num)]
    other = captions[1:] + captions[:1]
    results = {}
    for name, fields in SETTINGS.items():
        t0 = time.perf_counter()
        target = pipe.default_target("video", **fields)
        res = pipe.generate_batch([{"video_caption": c} for c in captions], [target], seed=0, progress=False)
        clips = np.stack(res.values["video"])
        firsts = [c[0] for c in clips]
        own, wrong = checker_scores(firsts, captions), checker_scores(firsts, other)
        results[name] = {"own": own, "other": wrong, "seconds": time.perf_counter() - t0}
        print(f"{name}: score {own['score']:.3f} (other caption {wrong['score']:.3f}), presence "
              f"{own['presence']:.3f}, extra {own['extra_objects']:.2f}", flush=True)  # fmt: skip
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
