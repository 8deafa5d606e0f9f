"""Caption <-> rgb retrieval benchmark on world data (recall@1/5/10), as library code:
``bench/retrieval_world.py`` is its command line (the methods and variants are described there).

    opts = RetrievalBenchOptions(data="data/world_model", num=500, methods="pooled,predicted")
    report = run_retrieval_bench(opts)          # prints each report line as it goes
    write_report(report, opts)                  # <opts.out>/retrieval_world.json, older methods kept
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from fourm.data.derive.sentence_embeddings import load_minilm
from fourm.data.raw_dataset import read_dataset_info
from fourm.data.world import WorldConfig, paraphrases, sample_index
from fourm.errors import FourmError
from fourm.retrieval.data import RetrievalData
from fourm.retrieval.embed import PooledEmbedder
from fourm.retrieval.evaluate import evaluate_pair, format_report
from fourm.retrieval.settings import RetrievalSettings, fit_reference, load_pipeline, make_embedder
from fourm.utils.atomic import atomic_write_text
from tokenizers_zoo.vector import VectorTokenizer

METHODS = ("pooled", "pooled_finetuned", "predicted", "ceiling")
REPORT_NAME = "retrieval_world.json"


@dataclass
class RetrievalBenchOptions:
    """The settings of one benchmark run (the flags of ``bench/retrieval_world.py``)."""

    data: str = "data/world_model"
    split: str = "val"
    num: int = 500
    bundle: str = "models/world-default"
    bundle_predicted: str = "models/world-default"  # a bundle with a vector modality
    model_predicted: str | None = None  # another FourM directory with bundle_predicted's tokenizers
    decodings: str = "expected,greedy,maskgit"
    via: str = "caption"  # '' = no chained prediction
    methods: str = ",".join(METHODS)
    center_samples: int = 256
    align_samples: int = 4000
    align_dim: int = 32
    batch_size: int = 64
    out: str = "runs/retrieval_world"


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


def bench_pooled(args: RetrievalBenchOptions, data: RetrievalData, bundle: str, prefer_pixels: bool = False) -> dict:
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


def bench_predicted(args: RetrievalBenchOptions, data: RetrievalData) -> dict:
    """A vector modality predicted by ``args.bundle_predicted``'s model, caption vs each rgb view, per
    decoding: uncentred, centred and (``args.via``) chained through the model's own caption."""
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


def bench_via(args: RetrievalBenchOptions, pipe, data: RetrievalData, settings: RetrievalSettings, items: list, views: list[str],
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
    try:
        return load_minilm()
    except FourmError:
        return None


def minilm_vectors(texts: list[str]) -> torch.Tensor | None:
    """Unit MiniLM vectors (N, 384) of ``texts`` (None without the embed extra)."""
    encode = minilm()
    return None if encode is None else F.normalize(torch.from_numpy(encode(texts)).float(), dim=-1)


@functools.cache
def true_caption_embeddings(data: RetrievalData, rows: tuple[int, ...]) -> torch.Tensor | None:
    """MiniLM vectors (N, 384) of the captions at ``rows``, embedded once per run (None without the embed extra)."""
    return minilm_vectors(data.values("caption", list(rows)))


def bench_ceiling(args: RetrievalBenchOptions, data: RetrievalData) -> dict:
    """How far a caption-embedding target can go: a caption's MiniLM vector vs another paraphrase's,
    exactly and through the bundle's vector tokenizer (raw world datasets only)."""
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
        tok = VectorTokenizer.from_pretrained(tokenizer_dir)
        with torch.no_grad():
            own_q, other_q = (F.normalize(tok.decode(tok.encode(v)), dim=-1) for v in (own, other))
        print("ceiling: the same through the vector tokenizer (encode, decode)", flush=True)
        results["minilm_tokenized"] = both_directions(own_q, other_q, names)
    return results


def run_retrieval_bench(opts: RetrievalBenchOptions) -> dict:
    """Run ``opts.methods`` and return the report (the chance levels and each method's results)."""
    data = RetrievalData(opts.data, opts.split, opts.num)
    n = len(data)
    report = {"data": opts.data, "split": opts.split, "num": n, "chance": {f"@{k}": min(k, n) / n for k in (1, 5, 10)},
              "threads": torch.get_num_threads()}
    print(f"{opts.data} {opts.split}: {n} samples, chance R@1 {1 / n:.4f} R@5 {min(5, n) / n:.4f} R@10 {min(10, n) / n:.4f}")
    methods = [m.strip() for m in opts.methods.split(",") if m.strip()]
    if "pooled" in methods:
        report["pooled"] = bench_pooled(opts, data, opts.bundle)
    if "pooled_finetuned" in methods:  # the fine-tuned bundle, rgb read as pixel patches
        bundle = Path(opts.bundle_predicted)
        if (bundle / "model" / "model.safetensors").is_file():
            report["pooled_finetuned"] = bench_pooled(opts, data, str(bundle), prefer_pixels=True)
        else:
            report["pooled_finetuned"] = {"skipped": f"no bundle at {bundle}"}
    if "predicted" in methods:
        report["predicted"] = bench_predicted(opts, data)
    if "ceiling" in methods:
        report["ceiling"] = bench_ceiling(opts, data)
    return report


def write_report(report: dict, opts: RetrievalBenchOptions) -> Path:
    """Write ``<opts.out>/retrieval_world.json``, keeping the results of methods not run this time
    from an existing file of the same data, split and size; returns the path."""
    out = Path(opts.out) / REPORT_NAME
    if out.is_file():
        old = json.loads(out.read_text())
        if (old.get("data"), old.get("split"), old.get("num")) == (opts.data, opts.split, report["num"]):
            report = {**{k: v for k, v in old.items() if k in METHODS}, **report}
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    return out
