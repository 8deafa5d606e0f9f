"""Token data of the continuous-targets experiment: rows of an existing token dataset (rgb, caption,
caption_embedding tokens) joined with the raw MiniLM vectors of the same samples as two continuous
modalities (caption_vector: regression; caption_vector_dh: the diffusion head's copy).

    python experiments/continuous_targets/build_tokens.py --tokens data/world_model_tokens \
        --raw data/world_model_ce --out /tmp/ct/tokens --train 6000 --val 256
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets as hfd

from fourm.data.token_dataset import INFO_FILE, ModalityTokens, TokenDatasetInfo, save_token_splits
from fourm.errors import FourmError

KEEP = ["rgb", "caption", "caption_embedding"]
VECTORS = ["caption_vector", "caption_vector_dh"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--raw", required=True, help="raw dataset with the caption_embedding vector column")
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--val", type=int, default=256)
    args = ap.parse_args()
    tokens, raw = hfd.load_from_disk(args.tokens), hfd.load_from_disk(args.raw)
    info = TokenDatasetInfo.from_file(Path(args.tokens) / INFO_FILE)
    out = {}
    for split, n in (("train", args.train), ("val", args.val)):
        t = tokens[split].select(range(n)).select_columns(["id", *KEEP])
        r = raw[split].select(range(n))
        if t["id"] != r["id"]:
            raise FourmError(
                f"split {split}: the token and raw datasets' ids differ (expected the same samples in order)"
            )
        vectors = [list(map(float, v)) for v in r["caption_embedding"]]
        for name in VECTORS:
            t = t.add_column(name, vectors, feature=hfd.List(hfd.Value("float32")))
        out[split] = t
    mods = {m: info.modalities[m] for m in KEEP}
    for name in VECTORS:
        mods[name] = ModalityTokens("vector", 1, 1, value_dim=384)
    save_token_splits(args.out, out, TokenDatasetInfo(modalities=mods, specials=info.specials))
    print(f"wrote {args.out}: " + ", ".join(f"{k} {len(v)}" for k, v in out.items()))


if __name__ == "__main__":
    main()
