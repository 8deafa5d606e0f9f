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
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch

from fourm.errors import FourmError
from fourm.retrieval.data import RetrievalData
from fourm.retrieval.embed import PooledEmbedder
from fourm.retrieval.evaluate import evaluate_pair, format_report
from fourm.retrieval.settings import RetrievalSettings, fit_reference, load_pipeline, make_embedder
from fourm.utils.atomic import atomic_write_text

POOLED_VARIANTS = {  # name -> (center, normalize)
    "mean_dot": (False, False),
    "mean_l2": (False, True),
    "center_dot": (True, False),
    "center_l2": (True, True),
}
ALIGNED_VARIANTS = {"aligned": 1.0, "aligned_unweighted": 0.0}  # name -> power of the correlation weights


def both_directions(q_cap: torch.Tensor, k_rgb: torch.Tensor, names: tuple[str, str] = ("caption", "rgb")) -> dict:
    """Reports of caption -> rgb and rgb -> caption (or other ``names``) for paired embeddings (N, D) each."""
    out = {}
    for a, b, (query, key) in ((q_cap, k_rgb, names), (k_rgb, q_cap, names[::-1])):
        report = evaluate_pair(a, b)
        out[f"{query}->{key}"] = report
        print("  " + format_report(f"{query} -> {key}", report), flush=True)
    return out


def rgb_views(pipe) -> list[str]:
    """How an item's rgb side is given to the model: its tokens, and, when the model reads pixel
    patches (rgb_pixels, added by the fine-tuning example), the pixels alone and both together."""
    if "rgb_pixels" in pipe.model.config.modalities:
        return ["rgb", "rgb_pixels", "rgb+rgb_pixels"]
    return ["rgb"]


def bench_pooled(args, data: RetrievalData, bundle: str, prefer_pixels: bool = False) -> dict:
    """Pooled encoder embeddings of ``bundle``'s model, caption vs rgb (``prefer_pixels``: vs
    rgb_pixels when the model has it)."""
    pipe = load_pipeline(bundle)
    rgb = "rgb_pixels" if prefer_pixels and "rgb_pixels" in pipe.model.config.modalities else "rgb"
    mods = ["caption", rgb]
    settings = RetrievalSettings(method="pooled", align=False, center_samples=args.center_samples,
                                 batch_size=args.batch_size)
    embedder = make_embedder(pipe, settings, *data.specials(pipe))
    assert isinstance(embedder, PooledEmbedder)
    t0 = time.perf_counter()
    fit_reference(embedder, pipe, args.data, mods, settings, data.split, progress=True)
    items, rows = data.items(mods, pipe, batch_size=args.batch_size, progress=True)
    t1 = time.perf_counter()
    pools = {m: embedder.pools([{m: it[m]} for it in items], progress=True, desc=f"encode {m}") for m in mods}
    seconds = time.perf_counter() - t1
    results = {"bundle": bundle, "rgb": rgb, "num": len(rows), "encode_items_per_s": 2 * len(rows) / seconds,
               "tokenize_and_centres_s": t1 - t0, "variants": {}}
    names = ("caption", rgb)
    for name, (center, normalize) in POOLED_VARIANTS.items():
        embedder.center, embedder.normalize = center, normalize
        print(f"pooled {name} (center={center}, normalize={normalize})", flush=True)
        cap, key = (embedder.combine(*pools[m]) for m in mods)
        results["variants"][name] = {"center": center, "normalize": normalize, **both_directions(cap, key, names)}
    aligned = settings.replace(align=True, align_samples=args.align_samples, align_dim=args.align_dim)
    t0 = time.perf_counter()
    fit_reference(embedder, pipe, args.data, mods, aligned, data.split, progress=True)
    results["align_fit_s"] = time.perf_counter() - t0
    results["align"] = {"samples": args.align_samples, "dim": args.align_dim,
                        "correlations": [round(float(c), 4) for c in embedder.alignment.correlations]}
    print(f"alignment: top canonical correlations {results['align']['correlations'][:6]}", flush=True)
    for name, power in ALIGNED_VARIANTS.items():
        embedder.alignment.power = power
        print(f"pooled {name} (generalized CCA, dim {args.align_dim}, weights corr ** {power:g})", flush=True)
        cap, key = (embedder.combine(*pools[m]) for m in mods)
        results["variants"][name] = {"align_dim": args.align_dim, "power": power, **both_directions(cap, key, names)}
    return results


def bench_predicted(args, data: RetrievalData) -> dict:
    bundle = Path(args.bundle_predicted)
    if not (bundle / "model" / "model.safetensors").is_file():
        message = f"skipped: no bundle at {bundle} (bash scripts/build_default_model.sh makes the default one)"
        print(f"predicted: {message}", flush=True)
        return {"skipped": message}
    pipe = load_pipeline(bundle, args.model_predicted)
    views = rgb_views(pipe)
    results: dict = {"bundle": str(bundle), "model": args.model_predicted, "rgb_views": views,
                     "center_samples": args.center_samples, "decodings": {}}
    items = ref = None
    for decoding in [d.strip() for d in args.decodings.split(",") if d.strip()]:
        settings = RetrievalSettings(method="predicted", decoding=decoding, batch_size=args.batch_size)
        try:
            embedder = make_embedder(pipe, settings, *data.specials(pipe))
        except FourmError as e:
            print(f"predicted: skipped: {e}", flush=True)
            return {"skipped": str(e)}
        if items is None:
            needed = list(dict.fromkeys(["caption", *(m for v in views for m in v.split("+"))]))
            items, rows = data.items(needed, pipe, batch_size=args.batch_size, progress=True)
            results["num"] = len(rows)
            true = true_caption_embeddings(data, tuple(rows)) if embedder.modality == "caption_embedding" else None
            # reference items for the centres: training samples, as fourm-retrieve fits them
            ref_split = RetrievalData(args.data, "train", num=args.center_samples)
            ref, _ = ref_split.items(needed, pipe, batch_size=args.batch_size, progress=True)
        print(f"predicted {embedder.modality} {decoding} ({embedder.steps} steps)", flush=True)
        sides = {v: v.split("+") for v in ["caption", *views]}
        t0 = time.perf_counter()
        raw = {v: embedder.predict([{m: it[m] for m in ms} for it in items], progress=True) for v, ms in sides.items()}
        speed = len(sides) * len(items) / (time.perf_counter() - t0)
        fitted = embedder.fit_centers([{m: it[m] for m in ms} for ms in sides.values() for it in ref])
        centres = {v: fitted[embedder.set_key(ms)] for v, ms in sides.items()}
        centred = {v: torch.nn.functional.normalize(raw[v] - centres[v], dim=-1) for v in sides}
        out: dict = {"steps": embedder.steps, "items_per_s": speed}
        if true is not None:  # how close the prediction is to the real MiniLM vector of the caption
            out["cosine_to_true"] = {k: float((v * true).sum(-1).mean()) for k, v in raw.items()}
            print("  mean cosine to the true embedding: " + ", ".join(
                f"from {k} {v:.3f}" for k, v in out["cosine_to_true"].items()), flush=True)
            out["cosine_of_centres_to_true_mean"] = {
                k: float(torch.nn.functional.cosine_similarity(c, true.mean(dim=0), dim=0)) for k, c in centres.items()
            }
        for view in views:  # uncentred (the old flat layout), then centred by the modality set's mean prediction
            print(f"  uncentred, caption vs {view}", flush=True)
            out.update(both_directions(raw["caption"], raw[view], ("caption", view)))
        out["centred"] = {}
        for view in views:
            print(f"  centred (train means of {args.center_samples} predictions), caption vs {view}", flush=True)
            out["centred"].update(both_directions(centred["caption"], centred[view], ("caption", view)))
        if args.via:
            out["via"] = bench_via(args, pipe, data, settings, items, views, raw["caption"], true)
        results["decodings"][decoding] = out
    return results


def bench_via(args, pipe, data: RetrievalData, settings: RetrievalSettings, items: list, views: list[str],
              caption: torch.Tensor, true: torch.Tensor | None) -> dict:
    """Chained prediction (``fourm-retrieve --via``): each rgb view gets the model's own greedy caption
    first, and the vector is predicted from the view and that caption; caption queries are unchanged
    (they hold their caption), so they are compared with the direct caption predictions."""
    via = [m.strip() for m in args.via.split(",") if m.strip()]
    embedder = make_embedder(pipe, settings.replace(via=via), *data.specials(pipe))
    out: dict = {"via": via}
    for view in views:
        t0 = time.perf_counter()
        vectors = embedder.predict([{m: it[m] for m in view.split("+")} for it in items], progress=True)
        entry = {"items_per_s": len(items) / (time.perf_counter() - t0)}
        if true is not None:
            entry["cosine_to_true"] = float((vectors * true).sum(-1).mean())
            print(f"  via {'+'.join(via)}: mean cosine to the true embedding from {view} {entry['cosine_to_true']:.3f}",
                  flush=True)
        print(f"  via {'+'.join(via)} ({entry['items_per_s']:.1f} items/s), caption vs {view}", flush=True)
        entry.update(both_directions(caption, vectors, ("caption", view)))
        out[view] = entry
    return out


@functools.cache
def minilm():
    """The offline MiniLM encoder, loaded once (None without the embed extra)."""
    from fourm.data.derive.sentence_embeddings import load_minilm

    try:
        return load_minilm()
    except FourmError:
        return None


def minilm_vectors(texts: list[str]) -> torch.Tensor | None:
    """Unit MiniLM vectors (N, 384) of ``texts`` (None without the embed extra)."""
    import torch.nn.functional as F

    encode = minilm()
    return None if encode is None else F.normalize(torch.from_numpy(encode(texts)).float(), dim=-1)


@functools.cache
def true_caption_embeddings(data: RetrievalData, rows: tuple[int, ...]) -> torch.Tensor | None:
    """MiniLM vectors (N, 384) of the captions at ``rows``, embedded once per run (None without the embed extra)."""
    return minilm_vectors(data.values("caption", list(rows)))


def bench_ceiling(args, data: RetrievalData) -> dict:
    import torch.nn.functional as F

    from fourm.data.raw_dataset import read_dataset_info
    from fourm.data.world import WorldConfig, paraphrases, sample_index

    if data.kind != "raw":
        return {"skipped": "needs a raw world dataset"}
    own = true_caption_embeddings(data, tuple(range(len(data))))
    if own is None:
        return {"skipped": "needs the embed extra (all-MiniLM-L6-v2)"}
    config = WorldConfig(size=int(read_dataset_info(args.data)["size"]))
    others = []
    for sample_id in data.ids:
        seed, index = sample_index(sample_id)
        others.append(paraphrases(index, seed, 1, config)[0])
    other = minilm_vectors(others)
    print("ceiling: MiniLM of the caption vs MiniLM of another paraphrase of the same scene", flush=True)
    names = ("caption", "paraphrase")
    results = {"minilm": both_directions(own, other, names)}
    bundle = Path(args.bundle_predicted)
    tokenizer_dir = bundle / "tokenizers" / "caption_embedding"
    if tokenizer_dir.is_dir():
        from tokenizers_zoo.vector import VectorTokenizer

        tok = VectorTokenizer.from_pretrained(tokenizer_dir)
        with torch.no_grad():
            own_q, other_q = (F.normalize(tok.decode(tok.encode(v)), dim=-1) for v in (own, other))
        print("ceiling: the same through the vector tokenizer (encode, decode)", flush=True)
        results["minilm_tokenized"] = both_directions(own_q, other_q, names)
    return results


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
    try:
        data = RetrievalData(args.data, args.split, args.num)
        n = len(data)
        report = {"data": args.data, "split": args.split, "num": n, "chance": {f"@{k}": min(k, n) / n for k in (1, 5, 10)},
                  "threads": torch.get_num_threads()}
        print(f"{args.data} {args.split}: {n} samples, chance R@1 {1 / n:.4f} R@5 {min(5, n) / n:.4f} R@10 {min(10, n) / n:.4f}")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if "pooled" in methods:
            report["pooled"] = bench_pooled(args, data, args.bundle)
        if "pooled_finetuned" in methods:  # the fine-tuned bundle, rgb read as pixel patches
            bundle = Path(args.bundle_predicted)
            if (bundle / "model" / "model.safetensors").is_file():
                report["pooled_finetuned"] = bench_pooled(args, data, str(bundle), prefer_pixels=True)
            else:
                report["pooled_finetuned"] = {"skipped": f"no bundle at {bundle}"}
        if "predicted" in methods:
            report["predicted"] = bench_predicted(args, data)
        if "ceiling" in methods:
            report["ceiling"] = bench_ceiling(args, data)
    except FourmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) / "retrieval_world.json"
    if out.is_file():  # keep results of methods not run this time (same data and size)
        old = json.loads(out.read_text())
        if (old.get("data"), old.get("split"), old.get("num")) == (args.data, args.split, n):
            kept = ("pooled", "pooled_finetuned", "predicted", "ceiling")
            report = {**{k: v for k, v in old.items() if k in kept}, **report}
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
