"""World consistency evaluation of a FourM bundle: ground-truth world scenes, batched generation of
every task, scores against the truth, tokenizer ceilings and chance baselines, no network needed.

Usage::

    pipe = FourMPipeline.from_pretrained("models/world-default")
    samples = load_samples(None, 64, "val", pipe)          # world val scenes at the model's size
    results, generated = evaluate(pipe, samples, batch=64, seed=0, steps=None)
    print(table(results))                                  # fourm.eval.world_report

or all of it, files included: :func:`run_world_eval` (``bench/eval_world.py`` is its command line).

Tasks (each one batched generation with the pipeline's default targets; a given rgb image is read
as the model's patch modality that reads it, e.g. rgb_pixels, alone or with its tokens: the
pipeline's ``image_inputs``, as ``generate.py`` does):
rgb -> semseg, rgb -> depth, rgb -> caption, rgb -> bboxes, caption -> rgb, caption -> bboxes -> rgb
(chained).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor
from tqdm.auto import tqdm

from fourm.data.pretokenize import content_fingerprint, dataset_fingerprint
from fourm.data.raw_dataset import VAL_INDEX_OFFSET, RawSamples, load_raw_dataset
from fourm.data.world import CLASS_NAMES, WorldConfig, render_sample
from fourm.errors import FourmError
from fourm.eval.world_report import jsonable, save_examples
from fourm.eval.world_scores import (
    box_relation_acc,
    caption_scores,
    checker_scores,
    depth_scores,
    detection_scores,
    label_f1,
    mean_defined,
    psnr,
    relations_on_truth,
    semseg_scores,
)
from fourm.generation import GivenTokens
from fourm.generation.pipeline import DEFAULT_BUNDLE, FourMPipeline
from fourm.generation.rerank import log_likelihood
from fourm.utils.atomic import atomic_path, atomic_write_text
from fourm.utils.outputs import partial_run

REQUIRED = ("rgb", "semseg", "depth", "caption", "bboxes")
DEFAULT_MODEL = "models/world-default"  # the name the results record when no bundle is given

TASKS = {  # name -> (conditions, targets in chain order)
    "rgb_to_semseg": (("rgb",), ("semseg",)),
    "rgb_to_depth": (("rgb",), ("depth",)),
    "rgb_to_caption": (("rgb",), ("caption",)),
    "rgb_to_bboxes": (("rgb",), ("bboxes",)),
    "caption_to_rgb": (("caption",), ("rgb",)),
    "caption_to_bboxes_to_rgb": (("caption",), ("bboxes", "rgb")),
    # on request only (--tasks): the shapes drawn first as semseg classes, then the image over them
    "caption_to_semseg_to_rgb": (("caption",), ("semseg", "rgb")),
    "caption_to_bboxes_to_semseg_to_rgb": (("caption",), ("bboxes", "semseg", "rgb")),
}
ON_REQUEST_TASKS = ("caption_to_semseg_to_rgb", "caption_to_bboxes_to_semseg_to_rgb")
DEFAULT_TASKS = tuple(t for t in TASKS if t not in ON_REQUEST_TASKS)  # what a run measures unless asked


# ----------------------------------------------------------------------------------------- data


def load_samples(
    data: str | None, num: int, split: str, pipe, start: int = 0, world: WorldConfig | None = None
) -> list[dict]:
    """``num`` ground-truth samples from scene ``start`` on (rgb, depth, semseg at the model's image
    size, caption, bboxes): world val scenes (seed 1, index 1e9 + j; ``world`` sets how they are made,
    its size replaced by the model's) without ``data``, else the ``split`` of a raw dataset."""
    if data is None:
        size = pipe.codec("rgb").image_size
        config = WorldConfig(size=size) if world is None else dataclasses.replace(world, size=size)
        raw = [render_sample(VAL_INDEX_OFFSET + j, seed=1, config=config) for j in range(start, start + num)]
    else:
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


def given(pipe, name: str, values: list) -> GivenTokens:
    """Per-sample raw values -> a batched condition (GivenTokens)."""
    codec = pipe.codec(name)
    ids = pipe.tokenize(name, values)
    if codec.kind == "patches":  # (B, N, P) pixel patches
        return GivenTokens.patches(ids)
    if codec.kind == "sequence":
        return GivenTokens.sequence(ids, eos=codec.eos, pad=codec.pad)
    return GivenTokens.at(ids)


def caption_margin(pipe, name: str, values: list, captions: list[str], others: list[str], start_id: int) -> Tensor:
    """log p(``values`` of modality ``name`` | ``captions``) - log p(``values`` | ``others``), teacher-forced
    (``start_id``: a sequence's [SOS]) -> (B,) fp32 nats: how much the captions' words decide the values."""
    scored = given(pipe, name, values)
    lp = [log_likelihood(pipe.model, {"caption": given(pipe, "caption", text)}, name, scored, start_id)
          for text in (captions, others)]  # fmt: skip
    return lp[0] - lp[1]


def given_conditions(pipe, raw: dict[str, list]) -> dict[str, GivenTokens]:
    """Per-sample raw values of conditions -> batched conditions, a given image read as the model
    reads it (rgb -> rgb_pixels patches, with its tokens only under image_inputs "both")."""
    return {c: given(pipe, c, values) for c, values in pipe.with_patch_conditions(raw).items()}


def roundtrip(pipe, name: str, values: list, batch: int, seed: int) -> list:
    """Raw values -> tokens -> raw values with the bundle's tokenizer (the tokenizer ceiling)."""
    out: list = []
    for start in range(0, len(values), batch):
        out += pipe.detokenize(name, pipe.tokenize(name, values[start : start + batch]), seed=seed)
    return out


class Generator:
    """Batched generation of targets from per-sample conditions, with one shared progress bar."""

    def __init__(self, pipe, samples: list[dict], batch: int, seed: int, steps: int | None, bar) -> None:
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
            conds = given_conditions(self.pipe, {c: [s[c] for s in chunk] for c in conditions})
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


# ----------------------------------------------------------------------------------- evaluation


def _references(pipe, samples: list[dict], batch: int, seed: int, num_classes: int) -> dict:
    """The checker on the truth, the tokenizer ceilings and the baselines (no generation)."""
    n = len(samples)
    captions = [s["caption"] for s in samples]
    other = [samples[(i + 1) % n] for i in range(n)]  # another scene for every scene (n >= 2)
    recon = {m: roundtrip(pipe, m, [s[m] for s in samples], batch, seed) for m in ("rgb", "semseg", "depth")}
    recon_text = {m: roundtrip(pipe, m, [s[m] for s in samples], batch, seed) for m in ("caption", "bboxes")}
    results: dict = {}
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
        "bboxes_relation_acc": mean_defined([box_relation_acc(b, c) for b, c in zip(recon_text["bboxes"], captions)]),
        "boxes_per_sample": float(np.mean([len(b) for b in recon_text["bboxes"]])),
        "bboxes_detection": detection_scores(recon_text["bboxes"], samples),
    }
    mean_depth = float(np.mean([s["depth"] for s in samples]))
    results["baselines"] = {
        "checker_other_scene": checker_scores([o["rgb"] for o in other], captions, [s["bboxes"] for s in samples]),
        "semseg_all_background": semseg_scores([np.zeros_like(s["semseg"]) for s in samples], samples, num_classes),
        "semseg_other_scene": semseg_scores([o["semseg"] for o in other], samples, num_classes),
        "depth_constant": depth_scores([np.full_like(s["depth"], mean_depth) for s in samples], samples),
        "depth_other_scene": depth_scores([o["depth"] for o in other], samples),
        "caption_other_scene": {
            **caption_scores([o["caption"] for o in other], samples),
            "relation_acc_on_gt_image": relations_on_truth([o["caption"] for o in other], samples),
        },
        "bboxes_other_scene": detection_scores([o["bboxes"] for o in other], samples),
        "bbox_labels_other_scene_f1": float(np.mean([label_f1(o["bboxes"], c) for o, c in zip(other, captions)])),
        # the true labels at another scene's box positions (about half of the relations hold by chance)
        "bbox_relations_other_positions": mean_defined(
            [box_relation_acc(moved_boxes(s["bboxes"], o["bboxes"]), c) for s, o, c in zip(samples, other, captions)]
        ),
    }
    return results


def moved_boxes(boxes: list[dict], elsewhere: list[dict]) -> list[dict]:
    """``boxes`` with their labels at the positions of ``elsewhere``'s boxes (cycled; unchanged if empty)."""
    if not elsewhere:
        return list(boxes)
    return [{"label": b["label"], "box": list(elsewhere[i % len(elsewhere)]["box"])} for i, b in enumerate(boxes)]


def box_counts(generated: dict[str, list]) -> dict[str, float]:
    """Of a task's generated boxes: ``parse_failures`` (share of samples with a group that did not
    parse, dropped before any later target) and ``boxes_per_sample``."""
    failures = [bool(f) for f in generated.get("bboxes_parse_failures", [])]
    return {
        "parse_failures": float(np.mean(failures or [0.0])),
        "boxes_per_sample": float(np.mean([len(b) for b in generated["bboxes"]])),
    }


def score_task(task: str, generated: dict[str, list], samples: list[dict], num_classes: int) -> dict:
    """The scores of one task (a key of TASKS) from its generated values."""
    captions = [s["caption"] for s in samples]
    g = generated
    if task == "rgb_to_semseg":
        return semseg_scores(g["semseg"], samples, num_classes)
    if task == "rgb_to_depth":
        return depth_scores(g["depth"], samples)
    if task == "rgb_to_caption":
        return {
            **caption_scores(g["caption"], samples),
            "relation_acc_on_gt_image": relations_on_truth(g["caption"], samples),
        }
    if task == "rgb_to_bboxes":  # detection: the true boxes found, labelled and placed
        return {
            **detection_scores(g["bboxes"], samples),
            "relation_acc": mean_defined([box_relation_acc(b, c) for b, c in zip(g["bboxes"], captions)]),
            **box_counts(g),
        }
    if task in ("caption_to_rgb", "caption_to_semseg_to_rgb"):
        return checker_scores(g["rgb"], captions)
    if task in ("caption_to_bboxes_to_rgb", "caption_to_bboxes_to_semseg_to_rgb"):
        return {
            **checker_scores(g["rgb"], captions, g["bboxes"]),
            "bbox_label_f1": float(np.mean([label_f1(b, c) for b, c in zip(g["bboxes"], captions)])),
            # the caption's left/right/above/below relations that the generated boxes keep
            "bbox_relation_acc": mean_defined([box_relation_acc(b, c) for b, c in zip(g["bboxes"], captions)]),
            **box_counts(g),
        }
    raise FourmError(f"unknown task '{task}' (known: {', '.join(TASKS)})")


def evaluate(
    pipe,
    samples: list[dict],
    batch: int,
    seed: int,
    steps: int | None,
    progress: bool = True,
    tasks: tuple[str, ...] = DEFAULT_TASKS,
    partial: Path | None = None,
) -> tuple[dict, dict]:
    """All metrics (a nested dict) and the generated values per task (``tasks``: a subset of TASKS).
    ``partial``: a folder where each task's generated values are kept as it finishes and read back
    instead of generated again (a resumed run; its settings are the caller's to check)."""
    num_classes = max(len(CLASS_NAMES), int(getattr(pipe.codec("semseg").tokenizer.cfg, "num_classes", 0) or 0))
    timings: dict[str, float] = {}
    bar = tqdm(total=len(tasks) * math.ceil(len(samples) / batch) + 1, desc="eval_world", disable=not progress)

    start = time.perf_counter()
    results = _references(pipe, samples, batch, seed, num_classes)
    timings["references"] = time.perf_counter() - start
    bar.update(1)

    generate = Generator(pipe, samples, batch, seed, steps, bar)
    gen: dict[str, dict[str, list]] = {}
    for task in tasks:
        done = None if partial is None else partial / f"{task}.pkl"
        if done is not None and done.is_file():  # generated before an interruption, same settings
            with open(done, "rb") as f:
                gen[task], timings[task] = pickle.load(f)
            bar.update(math.ceil(len(samples) / batch))
            continue
        conds, targets = TASKS[task]
        start = time.perf_counter()
        gen[task] = generate(conds, targets)
        timings[task] = time.perf_counter() - start
        if done is not None:
            save_task(done, gen[task], timings[task])
    bar.close()

    for task in tasks:
        results[task] = score_task(task, gen[task], samples, num_classes)
    results["timings_s"] = timings
    return results, gen


def save_task(path: Path, values: dict[str, list], seconds: float) -> None:
    """One task's generated values and time, written atomically (a resume reads them back)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump((values, seconds), f)


# ----------------------------------------------------------------------------------- a whole run


def parse_generation_settings(items: list[str]) -> dict[str, dict]:
    """``["rgb.guidance_scale=3", ...]`` -> {"rgb": {"guidance_scale": 3}} (values read as YAML)."""
    out: dict[str, dict] = defaultdict(dict)
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, field = key.strip().partition(".")
        if not sep or not dot or not name or not field:
            raise FourmError(f"malformed --set '{item}' (expected MODALITY.FIELD=VALUE, e.g. rgb.guidance_scale=3)")
        out[name][field] = yaml.safe_load(value)
    return dict(out)


def parse_tasks(text: str) -> tuple[str, ...]:
    """``"rgb_to_depth,caption_to_rgb"`` -> a tuple of TASKS keys; FourmError for an unknown one."""
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise FourmError(f"unknown task '{(unknown or [''])[0]}' in --tasks (known: {', '.join(TASKS)})")
    return tasks


def check_options(num: int, batch: int, steps: int | None, start: int) -> None:
    """FourmError for option values the evaluation cannot run with."""
    if num < 2:
        raise FourmError(f"--num must be >= 2 (baselines pair every scene with another), got {num}")
    if batch < 1 or (steps is not None and steps < 1) or start < 0:
        raise FourmError(f"--batch and --steps must be >= 1 and --start >= 0, got {batch}, {steps}, {start}")


def load_eval_pipeline(
    model: str | Path | None,
    device: str = "cpu",
    settings: dict[str, dict] | None = None,
    image_inputs: str = "patches",
):
    """The bundle's pipeline (default: the shipped one), checked to have every modality the
    evaluation needs, with generation defaults ``settings`` ({modality: {field: value}}) and
    ``image_inputs`` (FourMPipeline.image_inputs) applied."""
    pipe = FourMPipeline.from_pretrained(model, device=device)
    pipe.image_inputs = image_inputs
    missing = [m for m in REQUIRED if m not in pipe.modalities]
    if missing:
        raise FourmError(f"the model lacks {', '.join(missing)} (eval_world needs {', '.join(REQUIRED)})")
    for name, fields in (settings or {}).items():
        pipe.set_defaults(name, **fields)
    return pipe


def run_world_eval(
    model: str | Path | None = None,
    out: str | Path = "runs/eval_world",
    *,
    data: str | None = None,
    split: str = "val",
    num: int = 64,
    start: int = 0,
    seed: int = 0,
    batch: int = 64,
    steps: int | None = None,
    tasks: tuple[str, ...] = DEFAULT_TASKS,
    settings: dict[str, dict] | None = None,
    device: str = "cpu",
    progress: bool = True,
    world: WorldConfig | None = None,
    image_inputs: str = "patches",
) -> dict:
    """Evaluate the bundle ``model`` and write ``<out>/eval_world.json`` (NaN -> null) and
    ``<out>/examples.png``; returns the results (``config`` included). ``world``: how the world val
    scenes are made (default WorldConfig(); not with ``data``)."""
    check_options(num, batch, steps, start)
    if world is not None and data is not None:
        raise FourmError("a world config sets how world val scenes are made: give it without --data")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise FourmError(f"unknown task '{(unknown or [''])[0]}' (known: {', '.join(TASKS)})")
    pipe = load_eval_pipeline(model, device, settings, image_inputs)
    manifest = {
        "model": content_fingerprint(model or DEFAULT_BUNDLE), "data": None if data is None else dataset_fingerprint(data),
        "split": split, "world": None if world is None else world.to_dict(), "num": num, "start": start, "seed": seed,
        "batch": batch, "steps": steps, "settings": settings or {}, "image_inputs": image_inputs, "device": device,
    }  # fmt: skip
    manifest = json.loads(json.dumps(manifest))  # as read back from its file (tuples -> lists)
    t0 = time.perf_counter()
    with partial_run(out, manifest, hint="delete it to start over") as partial:  # a resume skips finished tasks
        torch.manual_seed(seed)
        samples = load_samples(data, num, split, pipe, start, world)
        results, gen = evaluate(pipe, samples, batch, seed, steps, progress=progress, tasks=tuple(tasks), partial=partial)
        results["config"] = {
            "model": str(model or DEFAULT_MODEL),
            "data": data or "world val (seed 1)",
            "world": None if world is None else world.to_dict(),
            "image_inputs": pipe.image_inputs,
            "num": len(samples),
            "start": start,
            "tasks": list(tasks),
            "generation": {m: pipe.default_target(m).to_dict() for m in ("bboxes", "rgb", "semseg", "depth", "caption")},
            "seed": seed,
            "steps": steps,
            "image_size": int(samples[0]["rgb"].shape[0]),
            "seconds": time.perf_counter() - t0,
        }
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "eval_world.json", json.dumps(jsonable(results), indent=2) + "\n")
        save_examples(out / "examples.png", samples, gen)
    return results
