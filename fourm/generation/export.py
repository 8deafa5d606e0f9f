"""Write a :class:`fourm.generation.pipeline.GenerationResult` to a folder (atomically)::

    out/
        sample_000/rgb.png            one PNG per image-like modality, conditions included, native size
        sample_000/depth.png          (depth / semseg colour-mapped, edges white on black)
        sample_000/rgb_with_boxes.png rgb up-scaled to >= 256 px with the sample's boxes, when both exist
        sample_000/video.gif          a clip (T, H, W, 3) as an animated GIF, and video_strip.png its frames
                                      (the overview shows its first frame)
        sequences.json                per sample: caption, bboxes, color_palette, metadata and
                                      parse_failures ({modality: [{"text", "error"}, ...]} of the
                                      structured targets, empty lists when all parsed); the plan
                                      and the negative conditions, if any
        overview.png                  rows = samples, columns = conditions then targets

(:func:`save_prompt_results`: the layout of a ``generate.py --prompts`` run.)

Colour-mapped depth and semseg PNGs can be given back as conditions (see :mod:`fourm.codecs.values`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fourm.core.image_kinds import IMAGE_KINDS
from fourm.data.visualize import draw_boxes, sample_grid
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.config import to_jsonable
from fourm.utils.video import is_clip, save_clip

BOXES_MIN_SIDE = 256  # rgb_with_boxes is up-scaled to at least this many pixels (labels need >= 96)


def picture(modality: str, value: Any) -> np.ndarray | None:
    """An image-like value as a PNG-ready uint8 array ((H, W, 3), or (H, W) for edges), else None.
    Image kinds are shown by their table entry (:meth:`fourm.core.image_kinds.ImageKind.picture`)."""
    if not isinstance(value, np.ndarray) or value.ndim not in (2, 3):
        return None
    spec = IMAGE_KINDS.get(modality)
    if spec is not None and value.ndim == spec.ndim:
        return spec.picture(value)
    if value.ndim == 3 and value.shape[-1] == 3:
        return np.clip(value, 0, 255).astype(np.uint8)
    if value.ndim == 2:  # another single-channel map: min-max grey
        v = value.astype(np.float64)
        lo, hi = float(v.min()), float(v.max())
        return np.zeros(v.shape, np.uint8) if hi <= lo else np.rint((v - lo) / (hi - lo) * 255).astype(np.uint8)
    return None


def boxes_picture(rgb: np.ndarray, boxes: list[dict]) -> np.ndarray:
    """``rgb`` up-scaled (nearest) to at least :data:`BOXES_MIN_SIDE` px with ``boxes`` drawn and labelled."""
    k = max(1, math.ceil(BOXES_MIN_SIDE / max(1, min(rgb.shape[:2]))))
    big = np.asarray(rgb, dtype=np.uint8).repeat(k, 0).repeat(k, 1)
    return draw_boxes(big, boxes, width=max(1, k // 2))


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return to_jsonable(value)


def _still(value: Any) -> Any:
    """What the overview shows of a value: a clip's first frame, anything else as it is."""
    return value[0] if is_clip(value) else value


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG")


def save_result(result: Any, out_dir: str | Path, overwrite: bool = False, scale: int = 2) -> Path:
    """Write ``result``'s files into ``out_dir`` (see the module docstring) -> ``out_dir``.

    An existing non-empty ``out_dir`` is replaced only with ``overwrite``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise FourmError(f"output directory {out_dir} already exists and is not empty (choose another --out)")
    n = result.num_samples
    samples = [result.sample(i) for i in range(n)]
    sequences = []
    with atomic_dir(out_dir) as tmp:
        for i, sample in enumerate(samples):
            folder = tmp / f"sample_{i:03d}"
            folder.mkdir()
            texts = {}
            for name, value in sample.items():
                if is_clip(value):  # a video: name.gif and name_strip.png
                    save_clip(value, folder, name)
                    continue
                pic = picture(name, value)
                if pic is not None:
                    _save_png(pic, folder / f"{name}.png")
                elif value is not None:
                    texts[name] = _json_value(value)
            failures = getattr(result, "parse_failures", {}) or {}
            if failures:
                texts["parse_failures"] = {m: per_sample[i] for m, per_sample in failures.items()}
            rgb, boxes = sample.get("rgb"), sample.get("bboxes")
            if isinstance(rgb, np.ndarray) and isinstance(boxes, list):
                _save_png(boxes_picture(rgb, boxes), folder / "rgb_with_boxes.png")
            sequences.append(texts)
        info = {
            "num_samples": n,
            "seed": result.seed,
            "conditions": result.conditions,
            "targets": result.targets,
            "plan": result.plan.to_dict(),
            **({"negative": result.negative} if getattr(result, "negative", None) else {}),
            **({"image_reading": result.reading} if getattr(result, "reading", None) else {}),
            "samples": sequences,
        }
        (tmp / "sequences.json").write_text(json.dumps(to_jsonable(info), indent=2) + "\n")
        shown = [m for m in result.modalities if all(m in s for s in samples)]
        if shown:
            grid = sample_grid([{m: _still(s[m]) for m in shown} for s in samples], shown, scale=scale)
            _save_png(grid, tmp / "overview.png")
    return out_dir


def save_prompt_results(
    rows: list[tuple[int, int, Any, int]],
    prompts: list[Any],
    targets: list[str],
    out_dir: str | Path,
    seed: int = 0,
    overwrite: bool = False,
    scale: int = 2,
) -> Path:
    """Write the results of a ``--prompts`` run into ``out_dir`` (atomically) -> ``out_dir``::

        samples/p000_s00/rgb.png  the image-like targets of prompt 0, sample 0 (+ rgb_with_boxes.png)
        sequences.json            {"num_prompts", "num_samples", "seed", "targets", "plan", "samples": [
                                   {"prompt", "sample", "line", "conditions", "outputs", "parse_failures"}]}
        overview.png              one row per prompt x sample, labelled with the prompt; conditions, targets

    ``rows``: (prompt index, sample index, GenerationResult, row of that result) in output order;
    ``prompts``: objects with ``conditions``, ``line`` and ``label``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise FourmError(f"output directory {out_dir} already exists and is not empty (choose another --out)")
    if not rows:
        raise FourmError("no generated rows to save")
    entries, grid_rows, shown = [], [], ["prompt"]
    with atomic_dir(out_dir) as tmp:
        for p, s, result, k in rows:
            sample = result.sample(k)
            folder = tmp / "samples" / f"p{p:03d}_s{s:02d}"
            outputs: dict[str, Any] = {}
            for name in result.targets:
                value = sample.get(name)
                if is_clip(value):  # a video: name.gif and name_strip.png
                    folder.mkdir(parents=True, exist_ok=True)
                    save_clip(value, folder, name)
                    continue
                pic = picture(name, value)
                if pic is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    _save_png(pic, folder / f"{name}.png")
                elif value is not None:
                    outputs[name] = _json_value(value)
            rgb, boxes = sample.get("rgb"), sample.get("bboxes")
            if isinstance(rgb, np.ndarray) and isinstance(boxes, list) and "rgb" in result.targets:
                folder.mkdir(parents=True, exist_ok=True)
                _save_png(boxes_picture(rgb, boxes), folder / "rgb_with_boxes.png")
            failures = getattr(result, "parse_failures", {}) or {}
            prompt = prompts[p]
            entries.append({
                "prompt": p, "sample": s, "line": prompt.line,
                "conditions": {n: _json_value(v) for n, v in prompt.conditions.items()},
                "outputs": outputs,
                "parse_failures": {m: per_sample[k] for m, per_sample in failures.items()},
            })  # fmt: skip
            grid_rows.append({"prompt": f"#{p} sample {s}: {prompt.label}", **{m: _still(v) for m, v in sample.items()}})
            shown += [m for m in result.modalities if m not in shown]
        first = rows[0][2]
        info = {
            "num_prompts": len(prompts),
            "num_samples": 1 + max(s for _, s, _, _ in rows),
            "seed": seed,
            "targets": list(targets),
            "plan": first.plan.to_dict(),
            **({"negative": first.negative} if getattr(first, "negative", None) else {}),
            **({"image_reading": first.reading} if getattr(first, "reading", None) else {}),
            "samples": entries,
        }
        (tmp / "sequences.json").write_text(json.dumps(to_jsonable(info), indent=2) + "\n")
        grid = sample_grid(grid_rows, [m for m in shown if any(m in r for r in grid_rows)], scale=scale)
        _save_png(grid, tmp / "overview.png")
    return out_dir
