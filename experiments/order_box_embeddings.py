"""Give a trained FourM's encoder an ordered view of box coordinates (round 15 of issue 16).

The decoder's coordinate rows (tied with the output head) are ordered: neighbouring bins have cosine
0.88, bins 32 apart -0.02. The encoder's rows of the same tokens are not (cosine about 0.08 at every
distance), so a model reading boxes has to learn each bin on its own, and comparing two boxes' x
(which is left?) means learning 64 x 64 pairs. This writes a copy of ``--model`` whose encoder rows
of the [x=i] / [y=i] tokens of ``--modality`` are the decoder's rows, rescaled to the encoder rows'
mean norm, and prints the cosine-by-distance of both tables before and after.

    python experiments/order_box_embeddings.py --model runs/r12_caption/model --out runs/r15_ordered_init/model
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fourm.model.fourm import FourM
from tokenizers_zoo.text import TextTokenizer
from tokenizers_zoo.text.vocabulary import coord_token


def coordinate_ids(tok: TextTokenizer, axis: str, bins: int) -> list[int]:
    """Token ids of [axis=0] .. [axis=bins-1] in the text tokenizer ``tok``."""
    return [tok.token_id(coord_token(axis, i)) for i in range(bins)]


def cosine_by_distance(rows: torch.Tensor) -> dict[int, float]:
    """Mean cosine similarity of rows ``d`` apart, for d in 1, 4, 16, 32."""
    n = torch.nn.functional.normalize(rows.float(), dim=1)
    sim = (n @ n.T).numpy()
    return {d: round(float(np.mean([sim[i, i + d] for i in range(len(rows) - d)])), 3) for d in (1, 4, 16, 32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved FourM (model directory)")
    parser.add_argument("--tokenizer", default="models/world-default/tokenizers/text", help="its text tokenizer")
    parser.add_argument("--modality", default="bboxes")
    parser.add_argument("--bins", type=int, default=64)
    parser.add_argument("--out", required=True, help="model directory to write (must not exist)")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"error: {out} exists")
    model = FourM.from_pretrained(args.model)
    emb, names = model.embeddings, list(model.config.modalities)
    m = names.index(args.modality)
    enc_off = sum(emb.vocab_sizes[:m])
    dec_off = sum(emb.seq_sizes[:m])
    tok = TextTokenizer.from_pretrained(Path(args.tokenizer))
    with torch.no_grad():
        for axis in ("x", "y"):
            ids = torch.tensor(coordinate_ids(tok, axis, args.bins))
            enc, dec = emb.enc_tokens[enc_off + ids], emb.dec_tokens[dec_off + ids]
            print(f"{axis}: encoder {cosine_by_distance(enc)}, decoder {cosine_by_distance(dec)}")
            scale = enc.norm(dim=1).mean() / dec.norm(dim=1).mean()
            emb.enc_tokens[enc_off + ids] = dec * scale
            print(f"{axis}: encoder rows now {cosine_by_distance(emb.enc_tokens[enc_off + ids])} (scale {scale:.3f})")
    model.save_pretrained(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
