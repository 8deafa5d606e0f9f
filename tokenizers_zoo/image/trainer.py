"""Training and evaluation loops for image tokenizers (used by ``fourm-tokenizer train`` / ``eval``).

Data are raw samples (``fourm.core.schema`` dicts, e.g. ``RawSamples`` or a plain list); the
tokenizer's modality column is stacked into memory once. The loop runs under ``accelerate`` (bf16
autocast on CPU), AdamW with linear warm-up and a cosine decay that follows whichever ends first,
``steps`` or ``max_minutes``. Periodic evaluation writes ``metrics.json``, a reconstruction PNG and
the best model (``tokenizer/``); the last state goes to ``last/``. All writes are atomic.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from fourm.core.schema import IMAGE_LAYOUT
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_write_text
from tokenizers_zoo.image.config import ImageTokenizerConfig
from tokenizers_zoo.image.metrics import PRIMARY_METRIC, ReconstructionMetrics
from tokenizers_zoo.image.tokenizer import ImageTokenizer
from tokenizers_zoo.image.visualize import reconstruction_grid
from tokenizers_zoo.quantizers import CodebookUsage

BEST_DIR, LAST_DIR, METRICS_FILE, GRID_FILE = "tokenizer", "last", "metrics.json", "reconstructions.png"


def stack_modality(samples: Any, key: str, limit: int | None = None, progress: bool = True) -> np.ndarray:
    """Stack raw ``key`` arrays of ``samples`` into one (N, H, W[, C]) array in the schema dtype.

    ``samples``: a ``datasets.Dataset`` (column read in one go), or any sequence of raw-sample dicts.
    """
    n = len(samples) if limit is None else min(limit, len(samples))
    dtype = IMAGE_LAYOUT[key][1]
    column_names = getattr(samples, "column_names", None)
    if column_names is not None and hasattr(samples, "with_format"):
        if key not in column_names:
            raise FourmError(f"dataset has no '{key}' column (columns: {', '.join(column_names)})")
        return np.asarray(samples.select(range(n)).with_format("numpy")[key], dtype=dtype)
    arrays = []
    for i in tqdm(range(n), desc=f"loading {key}", disable=not progress, leave=False):
        sample = samples[i]
        if key not in sample:
            raise FourmError(
                f"sample {sample.get('id', i)!r} has no '{key}' image (keys: {', '.join(sample)})"
            )
        arrays.append(np.asarray(sample[key], dtype=dtype))
    if not arrays:
        raise FourmError(f"no samples to load '{key}' from")
    return np.stack(arrays)


def make_accelerator(mixed_precision: str):
    """An ``accelerate.Accelerator``; resets accelerate's process-wide state if an earlier one differs."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    try:
        return Accelerator(mixed_precision=mixed_precision)
    except ValueError:  # "AcceleratorState has already been initialized and cannot be changed"
        AcceleratorState._reset_state()
        return Accelerator(mixed_precision=mixed_precision)


def _lr_factor(progress: float, step: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_ratio`` as progress goes 0 -> 1."""
    if step < warmup:
        return (step + 1) / warmup
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class _LossStep(nn.Module):
    """Routes ``tokenizer.loss`` through ``forward`` so accelerate/DDP wrappers see the call."""

    def __init__(self, tokenizer: ImageTokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, images: Tensor, step: int) -> tuple[Tensor, dict[str, float]]:
        return self.tokenizer.loss(images, step)


def _augment(images: Tensor, modality: str, generator: torch.Generator) -> Tensor:
    """Random horizontal flips per sample (normals excluded: flipping would need negating n_x)."""
    if modality == "normals":
        return images
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    if flip.any():
        images = images.clone()
        images[flip] = images[flip].flip(-1)
    return images


@torch.no_grad()
def evaluate(
    tokenizer: ImageTokenizer,
    arrays: np.ndarray,
    batch_size: int = 64,
    autocast_dtype: torch.dtype | None = torch.bfloat16,
    progress: bool = False,
) -> tuple[dict[str, float], np.ndarray]:
    """Encode -> decode ``arrays`` (raw, stacked); returns (metrics, reconstructions as raw arrays).

    Metrics: the modality's reconstruction metrics plus codebook ``usage`` (%), ``perplexity`` and
    ``dead_codes`` over all tokens of the set.
    """
    was_training = tokenizer.training
    tokenizer.eval()
    device = tokenizer.device
    metrics = ReconstructionMetrics(tokenizer.modality, tokenizer.cfg.num_classes)
    usage = CodebookUsage(tokenizer.vocab_size)
    recons = []
    for start in tqdm(range(0, len(arrays), batch_size), desc="eval", disable=not progress, leave=False):
        images = tokenizer.preprocess(arrays[start : start + batch_size]).to(device)
        with torch.autocast(
            device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
        ):
            tokens = tokenizer.encode(images)
            decoded = tokenizer.decode(tokens)
        usage.update(tokens)
        metrics.update(decoded, images)
        recons.append(tokenizer.postprocess(decoded))
    tokenizer.train(was_training)
    out = metrics.compute()
    out.update(
        usage=100.0 * usage.usage(), perplexity=usage.perplexity(), dead_codes=float(usage.dead_codes())
    )
    return out, np.concatenate(recons)


def train_image_tokenizer(
    cfg: ImageTokenizerConfig,
    train_samples: Any,
    val_samples: Any,
    out_dir: str | Path,
    steps: int | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a tokenizer from ``cfg`` on raw samples; write checkpoints, metrics and a PNG to ``out_dir``.

    ``steps`` / ``max_minutes`` override ``cfg.train``. Returns the metrics dict that is also written
    to ``metrics.json`` plus ``losses`` (per-step training loss).
    """
    from accelerate.utils import set_seed

    tc = cfg.train
    total_steps = tc.steps if steps is None else steps
    minutes = tc.max_minutes if max_minutes is None else max_minutes
    if total_steps < 1:
        raise FourmError(f"number of training steps must be >= 1, got {total_steps}")
    out_dir = Path(out_dir)
    set_seed(tc.seed)
    key = cfg.modality
    train_arrays = stack_modality(train_samples, key, progress=progress)
    val_arrays = stack_modality(val_samples, key, limit=tc.eval_samples, progress=progress)

    accelerator = make_accelerator(tc.mixed_precision)
    tokenizer = ImageTokenizer(cfg)
    tokenizer.preprocess(train_arrays[:1])  # wrong size / channels -> FourmError before training
    optimizer = torch.optim.AdamW(
        tokenizer.parameters(), lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay
    )
    step_module, optimizer = accelerator.prepare(_LossStep(tokenizer), optimizer)
    tokenizer.check_training_setup()  # e.g. load perceptual weights (after the move to the device)
    eval_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.mixed_precision)
    device = accelerator.device
    gumbel = getattr(tokenizer.quantizer, "set_temperature", None) if tc.gumbel_temperature_end else None
    rng = np.random.default_rng(tc.seed)
    flip_gen = torch.Generator().manual_seed(tc.seed)

    history: list[dict[str, float]] = []
    losses: list[float] = []
    best: dict[str, float] | None = None
    primary = PRIMARY_METRIC[key]
    t0 = time.monotonic()
    deadline = t0 + minutes * 60 if minutes else None

    def run_eval(step: int) -> None:
        nonlocal best
        ev_metrics, recons = evaluate(tokenizer, val_arrays, max(tc.batch_size, 32), eval_dtype)
        recent = losses[-max(1, tc.eval_every) :]
        row = {
            "step": step,
            "minutes": (time.monotonic() - t0) / 60,
            "train_loss": float(np.mean(recent)),
            **ev_metrics,
        }
        history.append(row)
        if accelerator.is_main_process:
            reconstruction_grid(key, val_arrays[:8], recons[:8], out_dir / GRID_FILE)
            if best is None or row[primary] >= best[primary]:
                best = row
                tokenizer.save_pretrained(out_dir / BEST_DIR)
            _write_metrics(out_dir, cfg, history, best, losses)
        shown = {
            k: round(v, 3) for k, v in row.items() if k in (primary, "usage", "perplexity", "train_loss")
        }
        tqdm.write(f"[eval step {step}] {shown}")

    bar = tqdm(
        total=total_steps,
        desc=f"train {key} tokenizer",
        disable=not progress or not accelerator.is_main_process,
    )
    step = 0
    tokenizer.train()
    while step < total_steps:
        elapsed = time.monotonic() - t0
        if deadline is not None and elapsed >= deadline - t0:
            break
        progress_frac = step / total_steps
        if deadline is not None:
            progress_frac = max(progress_frac, elapsed / (deadline - t0))
        lr = tc.lr * _lr_factor(progress_frac, step, tc.warmup_steps, tc.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if gumbel is not None:
            start_t, end_t = cfg.quantizer.temperature, tc.gumbel_temperature_end
            gumbel(start_t * (end_t / start_t) ** min(progress_frac, 1.0))

        idx = rng.integers(0, len(train_arrays), tc.batch_size)
        images = tokenizer.preprocess(train_arrays[idx])
        if tc.hflip:
            images = _augment(images, key, flip_gen)
        images = images.to(device)
        with accelerator.autocast():
            loss, logs = step_module(images, step)
        if not torch.isfinite(loss):
            raise FourmError(f"training diverged at step {step} (loss {float(loss)}); lower train.lr")
        accelerator.backward(loss)
        if tc.grad_clip > 0:
            accelerator.clip_grad_norm_(tokenizer.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{logs['loss']:.4f}", recon=f"{logs['recon']:.4f}", lr=f"{lr:.1e}")
        if step % tc.eval_every == 0 and step < total_steps:
            run_eval(step)
    bar.close()
    run_eval(step)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(out_dir / LAST_DIR)
    result = _write_metrics(out_dir, cfg, history, best, losses) if accelerator.is_main_process else {}
    result["losses"] = losses
    return result


def _write_metrics(
    out_dir: Path, cfg: ImageTokenizerConfig, history: list[dict], best: dict | None, losses: Sequence[float]
) -> dict[str, Any]:
    chunk = max(1, len(losses) // 100)
    curve = [[i + chunk, float(np.mean(losses[i : i + chunk]))] for i in range(0, len(losses), chunk)]
    data = {
        "modality": cfg.modality,
        "steps": len(losses),
        "minutes": history[-1]["minutes"] if history else 0.0,
        "final": history[-1] if history else {},
        "best": best or {},
        "history": history,
        "loss_curve": curve,
        "config": cfg.to_dict(),
    }
    atomic_write_text(out_dir / METRICS_FILE, json.dumps(data, indent=2) + "\n")
    return data
