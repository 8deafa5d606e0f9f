"""Token data of the continuous-image experiment: rows of an existing token dataset (rgb tokens,
caption tokens) plus the image's 64 pixel patches as a continuous modality (rgb_patches_dh: 64 x 192
float32 values in [-1, 1], cut from the dataset's rgb_pixels column, the raster order of fourm.core.patches).

    python experiments/continuous_targets_image/build_tokens.py --tokens data/world_model_tokens \
        --out /tmp/cti/tokens --train 6000 --val 256
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets as hfd
import numpy as np

from fourm.data.token_dataset import INFO_FILE, ModalityTokens, TokenDatasetInfo, save_token_splits

KEEP = ["rgb", "caption"]
NAME, LENGTH, VALUE_DIM = "rgb_patches_dh", 64, 192


def to_values(batch: dict) -> dict:
    """uint8 patches (64 * 192,) -> float32 values level / 127.5 - 1."""
    pix = np.asarray(batch["rgb_pixels"], dtype=np.float32)
    return {NAME: list(pix / 127.5 - 1.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--val", type=int, default=256)
    args = ap.parse_args()
    tokens = hfd.load_from_disk(args.tokens)
    info = TokenDatasetInfo.from_file(Path(args.tokens) / INFO_FILE)
    features = None
    out = {}
    for split, n in (("train", args.train), ("val", args.val)):
        t = tokens[split].select(range(n)).select_columns(["id", *KEEP, "rgb_pixels"])
        if features is None:
            features = t.features.copy()
            del features["rgb_pixels"]
            features[NAME] = hfd.List(hfd.Value("float32"))
        out[split] = t.map(
            to_values, batched=True, batch_size=256, remove_columns=["rgb_pixels"], features=features
        )
    mods = {m: info.modalities[m] for m in KEEP}
    mods[NAME] = ModalityTokens("vector", 1, LENGTH, value_dim=VALUE_DIM)
    save_token_splits(args.out, out, TokenDatasetInfo(modalities=mods, specials=info.specials))
    print(f"wrote {args.out}: " + ", ".join(f"{k} {len(v)}" for k, v in out.items()))


if __name__ == "__main__":
    main()
