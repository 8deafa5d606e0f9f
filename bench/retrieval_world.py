"""Benchmark: caption -> rgb and rgb -> caption retrieval on the world val split, recall@1/5/10.

    python bench/retrieval_world.py                                       # pooled + predicted + ceiling
    python bench/retrieval_world.py --bundle-predicted runs/finetune_ce/bundle --methods predicted

Query i's positive is key i among the first ``--num`` val samples (chance: k / N). ``pooled``
(default bundle model; ``pooled_finetuned``: the fine-tuned bundle, its rgb side read as pixel
patches when it has rgb_pixels) is measured in six variants: plain mean pooling with dot product, l2 only,
per-modality centring only, centring + l2 (centres: ``--center-samples`` train samples, no pairing
used), and aligned by a generalized CCA of caption and rgb fitted on ``--align-samples`` paired
train samples (``--align-dim`` dimensions weighted by canonical correlation, the default; and
unweighted). ``predicted`` uses the bundle of a model with a vector modality (default: the shipped
default bundle, which reads rgb as pixels and predicts caption_embedding; ``scripts/finetune_caption_embedding.sh``'s
fine-tuned one with ``--bundle-predicted runs/finetune_ce/bundle``), expected-code, greedy and MaskGIT decoding, with the rgb
side given as tokens, as pixel patches (rgb_pixels) and as both, each uncentred and centred by the
mean prediction of ``--center-samples`` train items of the same modalities (``fourm-retrieve
--center-predictions``), and chained: the rgb side first gets the model's own greedy caption
(``--via caption``, ``fourm-retrieve --via``); ``--model-predicted`` swaps in another FourM (e.g. a
longer fine-tune) with the bundle's tokenizers; it is skipped with a message when that bundle is absent. ``ceiling`` bounds
what ``predicted`` can reach with a caption-embedding target: caption i's own MiniLM vector as the query, the MiniLM vector of another
paraphrase of scene i (same objects, other wording and relations) as the key, exactly and through
the bundle's vector tokenizer (world data only). Writes ``<out>/retrieval_world.json``.
The logic is library code, :mod:`fourm.eval.retrieval_world`; this script is its command line.
"""

from __future__ import annotations

import argparse
import sys

from fourm.errors import FourmError
from fourm.eval.retrieval_world import RetrievalBenchOptions, run_retrieval_bench, write_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/world_model")
    p.add_argument("--split", default="val")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--bundle", default="models/world-default")
    p.add_argument("--bundle-predicted", default="models/world-default",
                   help="bundle with a vector modality (predicted, pooled_finetuned, ceiling's tokenizer)")
    p.add_argument("--model-predicted", default=None,
                   help="predicted: another FourM directory to use with --bundle-predicted's tokenizers")
    p.add_argument("--decodings", default="expected,greedy,maskgit", help="predicted: decodings to measure")
    p.add_argument("--via", default="caption",
                   help="predicted, each decoding: also chain through these modalities (fourm-retrieve --via; '' = skip)")
    p.add_argument("--methods", default="pooled,pooled_finetuned,predicted,ceiling")
    p.add_argument("--center-samples", type=int, default=256)
    p.add_argument("--align-samples", type=int, default=4000)
    p.add_argument("--align-dim", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="runs/retrieval_world")
    args = p.parse_args(argv)
    opts = RetrievalBenchOptions(**vars(args))
    try:
        report = run_retrieval_bench(opts)
    except FourmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = write_report(report, opts)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
