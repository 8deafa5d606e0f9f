"""Score a generate.py output folder with the rgb checker: per sample, which of the caption's objects
the image shows, whether its relations hold, the boxes' labels and their IoU with the found objects.

    python experiments/check_generation.py outputs/quickstart

(The quick start asks for 3 of 4 samples showing the caption's objects: issue 16.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fourm.eval.rgb_checker import check_rgb


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/quickstart")
    seq = json.loads((out / "sequences.json").read_text())
    shown = 0
    for i, sample in enumerate(seq["samples"]):
        caption = sample["caption"]
        rgb = np.asarray(Image.open(out / f"sample_{i:03d}" / "rgb.png").convert("RGB"))
        check = check_rgb(rgb, caption, boxes=sample.get("bboxes") or None)
        objects = ", ".join(f"{o.color} {o.shape}: {'found' if o.found else 'missing'} (drawn as {o.predicted_shape})"
                            for o in check.objects)
        relations = ", ".join(f"{r.text}: {r.ok}" for r in check.relations)
        labels = [b["label"] for b in sample.get("bboxes") or []]
        ious = ", ".join(f"{v:.2f}" for v in check.box_ious)
        all_found = all(o.found for o in check.objects)
        shown += all_found
        print(f"sample {i}: objects [{objects}] relations [{relations}] extra blobs {len(check.extra)} "
              f"boxes {labels} IoU [{ious}]")
    print(f"samples showing every object of the caption: {shown} of {len(seq['samples'])}")


if __name__ == "__main__":
    main()
