"""World consistency evaluation of a FourM bundle on world val scenes, with tokenizer ceilings and
chance baselines, all scored without any network (``fourm.eval``).

    python bench/eval_world.py [--model models/world-default] [--data DATASET] [--num 64] [--seed 0]
                               [--out runs/eval_world] [--batch 64] [--steps 8]

Tasks (each one batched generation with the pipeline's default targets; a given rgb image also
feeds the model's patch modalities that read it, e.g. rgb_pixels, as ``generate.py`` does):

- rgb -> semseg: mIoU, pixel accuracy vs ground truth;  rgb -> depth: MAE, RMSE, abs-rel, delta1;
- rgb -> caption: attribute accuracy vs the true caption, and its relations checked on the true image;
- caption -> rgb: the rgb checker (presence, shape, size, relations) against the caption;
- caption -> bboxes -> rgb (chained): the same, plus IoU of the generated boxes with the rgb's blobs.

References: the tokenizer ceilings (ground truth -> tokens -> decoded, scored the same way), the
checker on the ground-truth images, and baselines (another scene's image / caption / maps; constant
predictions). Without ``--data`` the scenes are world val scenes (seed 1, index 1e9 + j, as in
``fourm-data world --seed 1``) rendered at the model's image size. Writes ``eval_world.json`` (NaN
-> null: undefined, e.g. no box generated) and ``examples.png`` to ``--out``. The default 64 scenes
take about 15 s on 2 CPU cores with the shipped 9M-parameter bundle.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fourm.cli import friendly_errors
from fourm.data.world.palette import CLASS_NAMES
from fourm.errors import FourmError
from fourm.eval.aggregate import mean_scores
from fourm.eval.boxes import best_assignment, label_matches
from fourm.eval.captions import caption_accuracy, parse_caption
from fourm.eval.depth import depth_errors
from fourm.eval.rgb_checker import check_rgb
from fourm.eval.segmentation import segmentation_scores
from fourm.utils.atomic import atomic_path, atomic_write_text

REQUIRED = ("rgb", "semseg", "depth", "caption", "bboxes")
NUM_EXAMPLES = 4
CHECKER_KEYS = ("presence", "shape_acc", "size_acc", "object_acc", "relation_acc", "extra_objects", "score")


# ----------------------------------------------------------------------------------------- data


def load_samples(data: str | None, num: int, split: str, pipe, start: int = 0) -> list[dict]:
    """``num`` ground-truth samples from scene ``start`` on (rgb, depth, semseg at the model's image
    size, caption, bboxes)."""
    if data is None:
        from fourm.data.raw_dataset import VAL_INDEX_OFFSET
        from fourm.data.world import WorldConfig, render_sample

        config = WorldConfig(size=pipe.codec("rgb").image_size)
        raw = [render_sample(VAL_INDEX_OFFSET + j, seed=1, config=config) for j in range(start, start + num)]
    else:
        from fourm.data.raw_dataset import RawSamples, load_raw_dataset

        dataset = load_raw_dataset(data)
        if split not in dataset:
            raise FourmError(f"dataset {data} has no split '{split}' (splits: {', '.join(dataset)})")
        samples = RawSamples(dataset[split])
        missing = [k for k in REQUIRED if k not in samples.keys]
        if missing:
            raise FourmError(f"dataset {data} lacks {', '.join(missing)} (needs {', '.join(REQUIRED)})")
        raw = [samples[j] for j in range(start, min(start + num, len(samples)))]
        if len(raw) < 2:
            raise FourmError(f"split '{split}' of {data} has {len(samples)} samples: too few from --start {start}")
    return [
        {
            "rgb": pipe.codec("rgb").normalize(s["rgb"]),
            "depth": pipe.codec("depth").normalize(s["depth"]),
            "semseg": pipe.codec("semseg").normalize(s["semseg"]),
            "caption": s["caption"],
            "bboxes": s["bboxes"],
        }
        for s in raw
    ]


# ----------------------------------------------------------------------------------- generation


def given(pipe, name: str, values: list):
    """Per-sample raw values -> a batched condition (GivenTokens)."""
    from fourm.generation import GivenTokens

    codec = pipe.codec(name)
    ids = pipe.tokenize(name, values)
    if codec.kind == "patches":  # (B, N, P) pixel patches
        return GivenTokens.patches(ids)
    if codec.kind == "sequence":
        return GivenTokens.sequence(ids, eos=codec.eos, pad=codec.pad)
    return GivenTokens.at(ids)


def roundtrip(pipe, name: str, values: list, batch: int, seed: int) -> list:
    """Raw values -> tokens -> raw values with the bundle's tokenizer (the tokenizer ceiling)."""
    out: list = []
    for start in range(0, len(values), batch):
        out += pipe.detokenize(name, pipe.tokenize(name, values[start : start + batch]), seed=seed)
    return out


class Generator:
    """Batched generation of targets from per-sample conditions, with one shared progress bar."""

    def __init__(self, pipe, samples: list[dict], batch: int, seed: int, steps: int, bar) -> None:
        self.pipe, self.samples, self.bar = pipe, samples, bar
        self.batch, self.seed, self.steps = batch, seed, steps

    def target(self, name: str):
        causal = self.pipe.codec(name).kind == "sequence"
        if causal or self.steps is None:  # the pipeline's (the bundle's generation.json) defaults
            return self.pipe.default_target(name)
        return self.pipe.default_target(name, steps=self.steps)

    def __call__(self, conditions: tuple[str, ...], targets: tuple[str, ...]) -> dict[str, list]:
        out: dict[str, list] = defaultdict(list)
        for b, start in enumerate(range(0, len(self.samples), self.batch)):
            chunk = self.samples[start : start + self.batch]
            # a given image also feeds the model's patch modalities reading it (rgb -> rgb_pixels)
            raw = self.pipe.with_patch_conditions({c: [s[c] for s in chunk] for c in conditions})
            conds = {c: given(self.pipe, c, values) for c, values in raw.items()}
            result = self.pipe.generate(
                conds,
                [self.target(t) for t in targets],
                num_samples=len(chunk),
                seed=self.seed + b,
                progress=False,
            )
            for t in targets:
                out[t] += result.values[t]
                if t in result.parse_failures:  # per sample: the groups that did not parse
                    out[f"{t}_parse_failures"] += result.parse_failures[t]
            self.bar.update(1)
        return out


# ------------------------------------------------------------------------------------- scoring


def semseg_scores(preds: list, samples: list[dict], num_classes: int) -> dict[str, float]:
    return segmentation_scores(np.stack(preds), np.stack([s["semseg"] for s in samples]), num_classes)


def depth_scores(preds: list, samples: list[dict]) -> dict[str, float]:
    scores = depth_errors(np.stack(preds), np.stack([s["depth"] for s in samples]))
    return {k: scores[k] for k in ("mae", "rmse", "abs_rel", "delta1")}


def checker_scores(
    images: list, captions: list[str], boxes: list | None = None, depths: list | None = None
) -> dict:
    checks = [
        check_rgb(img, cap, boxes[i] if boxes else None, depths[i] if depths else None)
        for i, (img, cap) in enumerate(zip(images, captions))
    ]
    scores = mean_scores(c.scores() for c in checks)
    keep = CHECKER_KEYS + (("box_iou", "box_recall50", "box_iou_any") if boxes else ())
    return {k: scores[k] for k in keep}


def caption_scores(preds: list[str], samples: list[dict]) -> dict[str, float]:
    return mean_scores(caption_accuracy(p, s["caption"]) for p, s in zip(preds, samples))


def relations_on_truth(captions: list[str], samples: list[dict]) -> float:
    """Mean fraction of a caption's relations that hold on the ground-truth image and depth."""
    scores = [
        check_rgb(s["rgb"], c, depth=s["depth"]).scores()["relation_acc"] for c, s in zip(captions, samples)
    ]
    return mean_scores({"r": v} for v in scores)["r"]


def label_f1(boxes: list[dict], caption: str) -> float:
    """F1 between the box labels and the caption's objects, one-to-one: a label fits an object when it
    names its shape and every size / colour it names agrees (shape-only labels compare on shape)."""
    want = [(size, color, shape) for (color, shape), size in parse_caption(caption).objects.items()]
    got = [str(b.get("label", "")) for b in boxes]
    fits = np.array([[0.0 if label_matches(g, *w) else -np.inf for w in want] for g in got]).reshape(len(got), len(want))
    tp = len(best_assignment(fits))
    return 2 * tp / (len(got) + len(want)) if got or want else 1.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


# ------------------------------------------------------------------------------------- report


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


TABLE = [  # (row label, metric, model path, ceiling path, baseline path); paths into the results
    ("rgb->semseg", "mIoU", "rgb_to_semseg.miou", "tokenizer_ceiling.semseg.miou", "baselines.semseg_other_scene.miou"),
    ("rgb->semseg", "pixel acc", "rgb_to_semseg.pixel_acc", "tokenizer_ceiling.semseg.pixel_acc",
     "baselines.semseg_all_background.pixel_acc"),
    ("rgb->depth", "MAE", "rgb_to_depth.mae", "tokenizer_ceiling.depth.mae", "baselines.depth_constant.mae"),
    ("rgb->depth", "RMSE", "rgb_to_depth.rmse", "tokenizer_ceiling.depth.rmse", "baselines.depth_constant.rmse"),
    ("rgb->depth", "abs rel", "rgb_to_depth.abs_rel", "tokenizer_ceiling.depth.abs_rel",
     "baselines.depth_constant.abs_rel"),
    ("rgb->depth", "delta<1.25", "rgb_to_depth.delta1", "tokenizer_ceiling.depth.delta1",
     "baselines.depth_constant.delta1"),
    ("rgb->caption", "pair F1", "rgb_to_caption.pair_f1", "tokenizer_ceiling.caption.pair_f1",
     "baselines.caption_other_scene.pair_f1"),
    ("rgb->caption", "colour recall", "rgb_to_caption.color_recall", "tokenizer_ceiling.caption.color_recall",
     "baselines.caption_other_scene.color_recall"),
    ("rgb->caption", "shape recall", "rgb_to_caption.shape_recall", "tokenizer_ceiling.caption.shape_recall",
     "baselines.caption_other_scene.shape_recall"),
    ("rgb->caption", "count acc", "rgb_to_caption.count_acc", "tokenizer_ceiling.caption.count_acc",
     "baselines.caption_other_scene.count_acc"),
    ("rgb->caption", "relations on gt", "rgb_to_caption.relation_acc_on_gt_image",
     "tokenizer_ceiling.caption.relation_acc_on_gt_image", "baselines.caption_other_scene.relation_acc_on_gt_image"),
] + [
    (task, metric, f"{key}.{m}", f"tokenizer_ceiling.rgb_checker.{m}", f"baselines.checker_other_scene.{m}")
    for task, key in (("caption->rgb", "caption_to_rgb"), ("caption->bbox->rgb", "caption_to_bboxes_to_rgb"))
    for metric, m in (("presence", "presence"), ("shape acc", "shape_acc"), ("size acc", "size_acc"),
                      ("relation acc", "relation_acc"), ("checker score", "score"))
] + [
    ("caption->bbox->rgb", "box IoU", "caption_to_bboxes_to_rgb.box_iou", "tokenizer_ceiling.rgb_checker.box_iou",
     "baselines.checker_other_scene.box_iou"),
    ("caption->bbox->rgb", "box IoU any blob", "caption_to_bboxes_to_rgb.box_iou_any",
     "tokenizer_ceiling.rgb_checker.box_iou_any", "baselines.checker_other_scene.box_iou_any"),
    ("caption->bbox->rgb", "box labels F1", "caption_to_bboxes_to_rgb.bbox_label_f1",
     "tokenizer_ceiling.bboxes_label_f1", "baselines.bbox_labels_other_scene_f1"),
    ("caption->bbox->rgb", "boxes / sample", "caption_to_bboxes_to_rgb.boxes_per_sample",
     "tokenizer_ceiling.boxes_per_sample", "-"),
    ("caption->bbox->rgb", "parse failures", "caption_to_bboxes_to_rgb.parse_failures", "-", "-"),
]  # fmt: skip


def lookup(results: dict, path: str):
    node = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def table(results: dict) -> str:
    lines = [f"{'task':<20}{'metric':<18}{'model':>8}{'ceiling':>10}{'baseline':>10}", "-" * 66]
    for task, metric, model, ceiling, baseline in TABLE:
        vals = [lookup(results, p) if p != "-" else None for p in (model, ceiling, baseline)]
        lines.append(f"{task:<20}{metric:<18}{_fmt(vals[0]):>8}{_fmt(vals[1]):>10}{_fmt(vals[2]):>10}")
    gt = results["checker_ground_truth"]
    lines.append(
        "checker on ground-truth images: "
        + ", ".join(
            f"{k} {_fmt(gt[k])}" for k in ("presence", "shape_acc", "size_acc", "relation_acc", "box_iou")
        )
    )
    lines.append("ceiling: ground truth through the tokenizer; baseline: another scene's value / a constant")
    return "\n".join(lines)


def jsonable(obj):
    """NaN -> None (valid JSON), numpy scalars -> floats."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(float(obj)) else float(obj)
    return obj


def save_examples(path: Path, samples: list[dict], gen: dict[str, dict[str, list]]) -> None:
    """A grid: one row per example, ground truth and every task's output side by side."""
    from PIL import Image

    from fourm.data.visualize import colorize_depth, colorize_semseg, draw_boxes, sample_grid

    columns = {  # column -> (task, picture of sample i); a task not run leaves its column out
        "rgb->semseg": ("rgb_to_semseg", lambda g, i: colorize_semseg(g["semseg"][i])),
        "rgb->depth": ("rgb_to_depth", lambda g, i: colorize_depth(g["depth"][i])),
        "rgb->caption": ("rgb_to_caption", lambda g, i: g["caption"][i]),
        "caption->rgb": ("caption_to_rgb", lambda g, i: g["rgb"][i]),
        "caption->bbox->rgb": (
            "caption_to_bboxes_to_rgb",
            lambda g, i: draw_boxes(g["rgb"][i], g["bboxes"][i], labels=False),
        ),
    }
    rows = []
    for i, s in enumerate(samples[:NUM_EXAMPLES]):
        row = {"truth": draw_boxes(s["rgb"], s["bboxes"], labels=False), "caption": s["caption"]}
        row.update({name: draw(gen[task], i) for name, (task, draw) in columns.items() if task in gen})
        rows.append(row)
    picture = sample_grid(rows, list(rows[0]), scale=2)
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")


# ------------------------------------------------------------------------------------- main


TASKS = {  # name -> (conditions, targets in chain order)
    "rgb_to_semseg": (("rgb",), ("semseg",)),
    "rgb_to_depth": (("rgb",), ("depth",)),
    "rgb_to_caption": (("rgb",), ("caption",)),
    "caption_to_rgb": (("caption",), ("rgb",)),
    "caption_to_bboxes_to_rgb": (("caption",), ("bboxes", "rgb")),
}


def evaluate(
    pipe,
    samples: list[dict],
    batch: int,
    seed: int,
    steps: int | None,
    progress: bool = True,
    tasks: tuple[str, ...] = tuple(TASKS),
) -> tuple[dict, dict]:
    """All metrics (a nested dict) and the generated values per task (``tasks``: a subset of TASKS)."""
    n = len(samples)
    num_classes = max(
        len(CLASS_NAMES), int(getattr(pipe.codec("semseg").tokenizer.cfg, "num_classes", 0) or 0)
    )
    captions = [s["caption"] for s in samples]
    other = [samples[(i + 1) % n] for i in range(n)]  # another scene for every scene (n >= 2)
    results: dict = {}
    timings: dict[str, float] = {}
    num_batches = math.ceil(n / batch)
    bar = tqdm(total=len(tasks) * num_batches + 1, desc="eval_world", disable=not progress)

    start = time.perf_counter()
    recon = {m: roundtrip(pipe, m, [s[m] for s in samples], batch, seed) for m in ("rgb", "semseg", "depth")}
    recon_text = {m: roundtrip(pipe, m, [s[m] for s in samples], batch, seed) for m in ("caption", "bboxes")}
    results["checker_ground_truth"] = checker_scores(
        [s["rgb"] for s in samples], captions, [s["bboxes"] for s in samples], [s["depth"] for s in samples]
    )
    results["tokenizer_ceiling"] = {
        "rgb_checker": checker_scores(recon["rgb"], captions, [s["bboxes"] for s in samples]),
        "rgb_psnr": float(np.mean([psnr(r, s["rgb"]) for r, s in zip(recon["rgb"], samples)])),
        "semseg": semseg_scores(recon["semseg"], samples, num_classes),
        "depth": depth_scores(recon["depth"], samples),
        "caption": {
            **caption_scores(recon_text["caption"], samples),
            "relation_acc_on_gt_image": relations_on_truth(recon_text["caption"], samples),
        },
        "bboxes_label_f1": float(np.mean([label_f1(b, c) for b, c in zip(recon_text["bboxes"], captions)])),
        "boxes_per_sample": float(np.mean([len(b) for b in recon_text["bboxes"]])),
    }
    mean_depth = float(np.mean([s["depth"] for s in samples]))
    results["baselines"] = {
        "checker_other_scene": checker_scores(
            [o["rgb"] for o in other], captions, [s["bboxes"] for s in samples]
        ),
        "semseg_all_background": semseg_scores(
            [np.zeros_like(s["semseg"]) for s in samples], samples, num_classes
        ),
        "semseg_other_scene": semseg_scores([o["semseg"] for o in other], samples, num_classes),
        "depth_constant": depth_scores([np.full_like(s["depth"], mean_depth) for s in samples], samples),
        "depth_other_scene": depth_scores([o["depth"] for o in other], samples),
        "caption_other_scene": {
            **caption_scores([o["caption"] for o in other], samples),
            "relation_acc_on_gt_image": relations_on_truth([o["caption"] for o in other], samples),
        },
        "bbox_labels_other_scene_f1": float(
            np.mean([label_f1(o["bboxes"], c) for o, c in zip(other, captions)])
        ),
    }
    timings["references"] = time.perf_counter() - start
    bar.update(1)

    generate = Generator(pipe, samples, batch, seed, steps, bar)
    gen: dict[str, dict[str, list]] = {}
    for task in tasks:
        conds, targets = TASKS[task]
        start = time.perf_counter()
        gen[task] = generate(conds, targets)
        timings[task] = time.perf_counter() - start
    bar.close()

    scorers = {
        "rgb_to_semseg": lambda g: semseg_scores(g["semseg"], samples, num_classes),
        "rgb_to_depth": lambda g: depth_scores(g["depth"], samples),
        "rgb_to_caption": lambda g: {
            **caption_scores(g["caption"], samples),
            "relation_acc_on_gt_image": relations_on_truth(g["caption"], samples),
        },
        "caption_to_rgb": lambda g: checker_scores(g["rgb"], captions),
        "caption_to_bboxes_to_rgb": lambda g: {
            **checker_scores(g["rgb"], captions, g["bboxes"]),
            "bbox_label_f1": float(np.mean([label_f1(b, c) for b, c in zip(g["bboxes"], captions)])),
            # share of samples whose generated boxes had a group that did not parse (dropped before rgb)
            "parse_failures": float(np.mean([bool(f) for f in g.get("bboxes_parse_failures", [])] or [0.0])),
            "boxes_per_sample": float(np.mean([len(b) for b in g["bboxes"]])),
        },
    }
    for task in tasks:
        results[task] = scorers[task](gen[task])
    results["timings_s"] = timings
    return results, gen


def parse_generation_settings(items: list[str]) -> dict[str, dict]:
    """``["rgb.guidance_scale=3", ...]`` -> {"rgb": {"guidance_scale": 3}} (values read as YAML)."""
    import yaml

    out: dict[str, dict] = defaultdict(dict)
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, field = key.strip().partition(".")
        if not sep or not dot or not name or not field:
            raise FourmError(f"malformed --set '{item}' (expected MODALITY.FIELD=VALUE, e.g. rgb.guidance_scale=3)")
        out[name][field] = yaml.safe_load(value)
    return dict(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model bundle (default: models/world-default)")
    p.add_argument(
        "--data", default=None, help="raw dataset (default: world val scenes of seed 1, in-process)"
    )
    p.add_argument("--split", default="val", help="split of --data (default: val)")
    p.add_argument("--num", type=int, default=64, help="number of scenes (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    p.add_argument("--batch", type=int, default=64, help="samples per generation batch (default: 64)")
    p.add_argument("--start", type=int, default=0, help="index of the first scene (default: 0)")
    p.add_argument("--steps", type=int, default=None,
                   help="MaskGIT steps for image targets (default: the bundle's generation defaults)")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {', '.join(TASKS)}")
    p.add_argument("--set", action="append", default=[], metavar="MODALITY.FIELD=VALUE",
                   help="a generation default for this run, e.g. rgb.guidance_scale=3 (repeatable)")
    p.add_argument("--out", default="runs/eval_world", help="output directory (default: runs/eval_world)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.num < 2:
        raise FourmError(f"--num must be >= 2 (baselines pair every scene with another), got {args.num}")
    if args.batch < 1 or (args.steps is not None and args.steps < 1) or args.start < 0:
        raise FourmError(
            f"--batch and --steps must be >= 1 and --start >= 0, got {args.batch}, {args.steps}, {args.start}"
        )
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise FourmError(f"unknown task '{(unknown or [''])[0]}' in --tasks (known: {', '.join(TASKS)})")
    from fourm.generation.pipeline import FourMPipeline

    pipe = FourMPipeline.from_pretrained(args.model, device=args.device)
    missing = [m for m in REQUIRED if m not in pipe.modalities]
    if missing:
        raise FourmError(f"the model lacks {', '.join(missing)} (eval_world needs {', '.join(REQUIRED)})")
    for name, fields in parse_generation_settings(args.set).items():
        pipe.set_defaults(name, **fields)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    samples = load_samples(args.data, args.num, args.split, pipe, args.start)
    results, gen = evaluate(
        pipe, samples, args.batch, args.seed, args.steps, progress=not args.no_progress, tasks=tasks
    )
    results["config"] = {
        "model": str(args.model or "models/world-default"),
        "data": args.data or "world val (seed 1)",
        "num": len(samples),
        "start": args.start,
        "tasks": list(tasks),
        "generation": {m: pipe.default_target(m).to_dict() for m in ("bboxes", "rgb", "semseg", "depth", "caption")},
        "seed": args.seed,
        "steps": args.steps,
        "image_size": int(samples[0]["rgb"].shape[0]),
        "seconds": time.perf_counter() - start,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "eval_world.json", json.dumps(jsonable(results), indent=2) + "\n")
    save_examples(out / "examples.png", samples, gen)
    print(table(results))
    print(
        f"wrote {out / 'eval_world.json'} and {out / 'examples.png'} ({results['config']['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
