"""Round 28: what the quick start's segmentation says about its drawn objects when the chain's later
targets read the generated image as its tokens or as its pixel patches (one rgb draw per sample, so
the images are the same either way; seeds 0-5, 4 samples each).

    python experiments/round28_later_maps.py [--model models/world-default]

Prints, per reading, the share of each drawn object's pixels that the segmentation classes as the
caption's shape, and how often that class is the object's majority class.
"""

from __future__ import annotations

import argparse

import numpy as np

from fourm.generation.pipeline import DEFAULT_BUNDLE, FourMPipeline

PROMPT = "a small red circle to the left of a large blue square"
OBJECTS = (("blue square", 2, 1), ("red circle", 1, 0))  # (name, semseg class, channel that dominates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(DEFAULT_BUNDLE))
    args = p.parse_args()
    pipe = FourMPipeline.from_pretrained(args.model)
    for how in ("tokens", "patches"):
        pipe.generated_image_inputs = how
        rows: dict[str, list[tuple[float, bool]]] = {}
        for seed in range(6):
            rgb_target = pipe.default_target("rgb", candidates=1)
            out = pipe.generate({"caption": PROMPT}, ["bboxes", rgb_target, "semseg"], num_samples=4, seed=seed, progress=False)
            for rgb, seg in zip(out.values["rgb"], out.values["semseg"]):
                red, blue = rgb[..., 0].astype(int), rgb[..., 2].astype(int)
                for name, cls, channel in OBJECTS:
                    mask = (blue - red > 60) if channel == 1 else (red - blue > 60)
                    counts = np.bincount(seg[mask].astype(int), minlength=8)
                    rows.setdefault(name, []).append((counts[cls] / max(counts[1:].sum(), 1), counts[1:].argmax() + 1 == cls))
        for name, values in rows.items():
            share, majority = np.asarray(values, dtype=float).mean(axis=0)
            print(f"later targets read {how:7s} {name}: share in the caption's class {share:.3f}, majority right {majority:.3f}")


if __name__ == "__main__":
    main()
