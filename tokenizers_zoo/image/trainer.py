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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from fourm.core.schema import IMAGE_LAYOUT
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_write_text
from tokenizers_zoo.image.config import ImageTokenizerConfig, TrainConfig
from tokenizers_zoo.image.metrics import PRIMARY_METRIC, ReconstructionMetrics
from tokenizers_zoo.image.resume import RESUME_DIR, finish_resume, load_resume, run_manifest, save_resume
from tokenizers_zoo.image.tokenizer import ImageTokenizer, batch_to_model, build_image_tokenizer
from tokenizers_zoo.image.visualize import reconstruction_grid
from tokenizers_zoo.image.vqvae2 import LevelUsage, has_levels
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


def _augment(
    images: Tensor, modality: str, generator: torch.Generator, *extras: Tensor | None
) -> tuple[Tensor, ...]:
    """Random horizontal flips per sample (normals excluded: flipping would need negating n_x); each
    of ``extras`` (B, [C,] H, W; e.g. an auxiliary target) is flipped with its image. Returns
    (images, *extras)."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    out = [images, *extras]
    if modality != "normals" and flip.any():
        for i, x in enumerate(out):
            if x is not None:
                out[i] = x.clone()
                out[i][flip] = x[flip].flip(-1)
    return tuple(out)


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
    ``dead_codes`` over all tokens of the set (dynamic tokenizers: their codes, and ``tokens_per_image``).
    """
    was_training = tokenizer.training
    tokenizer.eval()
    device = tokenizer.device
    metrics = ReconstructionMetrics(tokenizer.modality, tokenizer.cfg.num_classes)
    usage = CodebookUsage(tokenizer.codebook_size)
    recons, counts = [], []
    levels = LevelUsage(tokenizer) if has_levels(tokenizer) else None  # vqvae2: top / bottom usage
    for start in tqdm(range(0, len(arrays), batch_size), desc="eval", disable=not progress, leave=False):
        images = tokenizer.preprocess(arrays[start : start + batch_size]).to(device)
        with torch.autocast(
            device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
        ):
            tokens = tokenizer.encode(images)
            decoded = tokenizer.decode(tokens)
        usage.update(tokenizer.token_codes(tokens))
        counts.append(tokenizer.token_counts(tokens).float())
        if levels is not None:
            levels.update(tokens)
        metrics.update(decoded, images)
        recons.append(tokenizer.postprocess(decoded))
    tokenizer.train(was_training)
    out = metrics.compute()
    out.update(
        usage=100.0 * usage.usage(), perplexity=usage.perplexity(), dead_codes=float(usage.dead_codes())
    )
    if tokenizer.cfg.architecture == "dynamic":  # a variable number of tokens per image
        out["tokens_per_image"] = float(torch.cat(counts).mean())
    if levels is not None:
        out.update(levels.metrics())
    return out, np.concatenate(recons)


@dataclass
class TrainingSetup:
    """What the loop trains: the accelerator, the tokenizer, its accelerate-prepared loss step and
    optimizer, and the autocast dtype of evaluation (None: fp32)."""

    accelerator: Any
    tokenizer: ImageTokenizer
    step_module: nn.Module
    optimizer: torch.optim.Optimizer
    eval_dtype: torch.dtype | None


@dataclass
class TrainingLog:
    """A run's record: the per-step training losses, one row per evaluation and the best row (by
    the modality's primary metric); ``t0``: the start time (``time.monotonic``)."""

    t0: float = field(default_factory=time.monotonic)
    losses: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] | None = None


def training_budget(
    tc: TrainConfig, steps: int | None = None, max_minutes: float | None = None
) -> tuple[int, float | None]:
    """(number of steps, time limit in seconds or None): ``steps`` / ``max_minutes`` where given,
    else ``tc.steps`` / ``tc.max_minutes`` (0 minutes: no limit). FourmError for fewer than 1 step."""
    total_steps = tc.steps if steps is None else steps
    minutes = tc.max_minutes if max_minutes is None else max_minutes
    if total_steps < 1:
        raise FourmError(f"number of training steps must be >= 1, got {total_steps}")
    return total_steps, (minutes * 60 if minutes else None)


def _parts(state: dict[str, torch.Tensor]) -> dict[str, dict[str, tuple[int, ...]]]:
    """A state dict's top-level parts (``decoder``, ``aux_head``, ...) -> {name: shape}."""
    parts: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, value in state.items():
        parts.setdefault(name.split(".")[0], {})[name] = tuple(value.shape)
    return parts


def start_from(tokenizer: ImageTokenizer, init: ImageTokenizer) -> list[str]:
    """Copy ``init``'s weights into ``tokenizer``: the encoder and quantiser must match exactly
    (FourmError naming the first mismatch); every other top-level part (the decoder, an auxiliary
    head) is copied whole where all its names and shapes match, else left as initialised: a decoder
    with more res blocks renumbers its layers, and copying the layers whose shapes happen to agree
    would put weights in the wrong places. Returns the names left as initialised."""
    own, given = tokenizer.state_dict(), init.state_dict()
    for name, value in own.items():
        if name.startswith(("encoder.", "quantizer.")) and (
            name not in given or given[name].shape != value.shape
        ):
            raise FourmError(f"the starting tokenizer's encoder/quantiser differ at '{name}': it cannot seed this config")
    own_parts, given_parts = _parts(own), _parts(given)
    copied = [p for p, shapes in own_parts.items() if p in ("encoder", "quantizer") or given_parts.get(p) == shapes]
    matching = {k: given[k] for part in copied for k in own_parts[part]}
    tokenizer.load_state_dict(matching, strict=False)
    return [k for k in own if k not in matching]


def setup_training(
    cfg: ImageTokenizerConfig, train_arrays: np.ndarray, init: ImageTokenizer | None = None
) -> TrainingSetup:
    """A tokenizer from ``cfg`` (fresh, or seeded with ``init``'s weights, :func:`start_from`) with
    its AdamW optimizer over the trainable parameters (``train.trainable``: "decoder" freezes the
    encoder and quantiser), both prepared by a new accelerator (``cfg.train.mixed_precision``).
    ``train_arrays[:1]`` is preprocessed first, so that images of the wrong size or channels fail
    with a FourmError before any training; the tokenizer's own training checks (e.g. loading
    perceptual-loss weights) run after the move to the device."""
    tc = cfg.train
    accelerator = make_accelerator(tc.mixed_precision)
    tokenizer = build_image_tokenizer(cfg)
    tokenizer.preprocess(train_arrays[:1])
    if init is not None:
        fresh = sorted({name.split(".")[0] for name in start_from(tokenizer, init)})
        if fresh:  # e.g. a wider or deeper decoder: it learns from scratch, say so
            print(f"starting tokenizer: {', '.join(fresh)} not copied (its layers differ), trained from scratch")
    if tc.trainable == "decoder":
        if init is None:
            raise FourmError("train.trainable 'decoder' needs a trained tokenizer to start from (its encoder stays frozen)")
        tokenizer.freeze_encoder()
    optimizer = torch.optim.AdamW(
        [p for p in tokenizer.parameters() if p.requires_grad], lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay
    )
    step_module, optimizer = accelerator.prepare(_LossStep(tokenizer), optimizer)
    tokenizer.check_training_setup()
    eval_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.mixed_precision)
    return TrainingSetup(accelerator, tokenizer, step_module, optimizer, eval_dtype)


def schedule_progress(step: int, total_steps: int, elapsed: float, budget_s: float | None) -> float:
    """How far the run is, 0 -> 1, for the schedules: the larger of the share of steps done and,
    with a time limit of ``budget_s`` seconds, the share of the time used."""
    progress = step / total_steps
    if budget_s is not None:
        progress = max(progress, elapsed / budget_s)
    return progress


def gumbel_temperature(start: float, end: float, progress: float) -> float:
    """The Gumbel-softmax temperature at ``progress`` (0 -> 1, clipped at 1): exponential from
    ``start`` to ``end``."""
    return start * (end / start) ** min(progress, 1.0)


def apply_schedules(setup: TrainingSetup, cfg: ImageTokenizerConfig, progress: float, step: int) -> float:
    """Set the learning rate of every parameter group for ``step`` at ``progress`` (warm-up, then
    cosine; :func:`_lr_factor`) and, with ``train.gumbel_temperature_end`` and a quantizer that has
    ``set_temperature``, the Gumbel temperature. Returns the learning rate."""
    tc = cfg.train
    lr = tc.lr * _lr_factor(progress, step, tc.warmup_steps, tc.min_lr_ratio)
    for group in setup.optimizer.param_groups:
        group["lr"] = lr
    set_temperature = getattr(setup.tokenizer.quantizer, "set_temperature", None)
    if tc.gumbel_temperature_end and set_temperature is not None:
        set_temperature(gumbel_temperature(cfg.quantizer.temperature, tc.gumbel_temperature_end, progress))
    return lr


def sample_batch(
    tokenizer: ImageTokenizer,
    arrays: np.ndarray,
    tc: TrainConfig,
    rng: np.random.Generator,
    flip_gen: torch.Generator,
    aux_arrays: np.ndarray | None = None,
    ground_arrays: np.ndarray | None = None,
) -> Tensor | dict[str, Tensor]:
    """``tc.batch_size`` images drawn from ``arrays`` with replacement (``rng``), preprocessed, and
    randomly flipped (``flip_gen``) when ``tc.hflip``; on the CPU. With ``aux_arrays`` (the same
    samples' auxiliary target, ``loss.aux``) or ``ground_arrays`` (their class maps for
    ``train.token_noise_ground``) a dict {modality: images, column: (B, [C,] H, W) tensor}."""
    idx = rng.integers(0, len(arrays), tc.batch_size)
    images = tokenizer.preprocess(arrays[idx])
    aux = None if aux_arrays is None else tokenizer.aux_targets(aux_arrays[idx])
    ground = None
    if ground_arrays is not None:  # class ids below 256 (uint8 maps), class 0 the background
        ground = batch_to_model("semseg", ground_arrays[idx], tokenizer.cfg.image_size, 256)
    if tc.hflip:
        images, aux, ground = _augment(images, tokenizer.modality, flip_gen, aux, ground)
    if aux is None and ground is None:
        return images
    batch = {tokenizer.modality: images}
    if aux is not None:
        batch[tokenizer.cfg.loss.aux.modality] = aux
    if ground is not None:
        batch[tc.token_noise_ground] = ground
    return batch


def train_step(
    setup: TrainingSetup, images: Tensor | dict[str, Tensor], step: int, grad_clip: float
) -> tuple[float, dict[str, float]]:
    """One optimisation step on ``images`` (or a :func:`sample_batch` dict): loss under autocast,
    backward, gradient-norm clipping to ``grad_clip`` (0: none), optimizer step. Returns (loss, the loss's logs); FourmError when the
    loss is not finite (nothing is updated then)."""
    accelerator = setup.accelerator
    if isinstance(images, dict):
        images = {k: v.to(accelerator.device) for k, v in images.items()}
    else:
        images = images.to(accelerator.device)
    with accelerator.autocast():
        loss, logs = setup.step_module(images, step)
    if not torch.isfinite(loss):
        raise FourmError(f"training diverged at step {step} (loss {float(loss)}); lower train.lr")
    accelerator.backward(loss)
    if grad_clip > 0:
        accelerator.clip_grad_norm_(setup.tokenizer.parameters(), grad_clip)
    setup.optimizer.step()
    setup.optimizer.zero_grad(set_to_none=True)
    return float(loss.detach()), logs


def evaluate_and_save(
    setup: TrainingSetup,
    cfg: ImageTokenizerConfig,
    val_arrays: np.ndarray,
    log: TrainingLog,
    step: int,
    out_dir: Path,
) -> dict[str, float]:
    """Evaluate at ``step`` and record the row in ``log`` (with the mean training loss since the
    last evaluation). The main process also writes the reconstruction PNG, the tokenizer to
    ``tokenizer/`` when the row is the best so far (ties: the later) and ``metrics.json``. Returns the row."""
    tc, key = cfg.train, cfg.modality
    primary = PRIMARY_METRIC[key]
    ev_metrics, recons = evaluate(setup.tokenizer, val_arrays, max(tc.batch_size, 32), setup.eval_dtype)
    recent = log.losses[-max(1, tc.eval_every) :]
    row = {
        "step": step,
        "minutes": (time.monotonic() - log.t0) / 60,
        "train_loss": float(np.mean(recent)),
        **ev_metrics,
    }
    log.history.append(row)
    if setup.accelerator.is_main_process:
        reconstruction_grid(key, val_arrays[:8], recons[:8], out_dir / GRID_FILE)
        if log.best is None or row[primary] >= log.best[primary]:
            log.best = row
            setup.tokenizer.save_pretrained(out_dir / BEST_DIR)
        _write_metrics(out_dir, cfg, log.history, log.best, log.losses)
    shown = {k: round(v, 3) for k, v in row.items()
             if k in (primary, "usage", "perplexity", "train_loss", "tokens_per_image")}  # fmt: skip
    tqdm.write(f"[eval step {step}] {shown}")
    return row


def finish_training(
    setup: TrainingSetup, cfg: ImageTokenizerConfig, log: TrainingLog, out_dir: Path
) -> dict[str, Any]:
    """Save the last state to ``last/`` and write ``metrics.json`` (main process) -> the metrics
    written (empty on the other processes) plus ``losses``."""
    if setup.accelerator.is_main_process:
        setup.tokenizer.save_pretrained(out_dir / LAST_DIR)
        result = _write_metrics(out_dir, cfg, log.history, log.best, log.losses)
    else:
        result = {}
    result["losses"] = log.losses
    return result


def train_image_tokenizer(
    cfg: ImageTokenizerConfig,
    train_samples: Any,
    val_samples: Any,
    out_dir: str | Path,
    steps: int | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
    init: ImageTokenizer | None = None,
    start_over: bool = False,
) -> dict[str, Any]:
    """Train a tokenizer from ``cfg`` on raw samples; write checkpoints, metrics and a PNG to ``out_dir``.

    ``steps`` / ``max_minutes`` override ``cfg.train``; ``init`` seeds the weights (needed by
    ``train.trainable: decoder``). Returns the metrics dict that is also written to ``metrics.json``
    plus ``losses`` (per-step training loss).

    Every ``train.save_every`` steps and at each evaluation the run's state goes to
    ``out_dir/resume/`` (:mod:`tokenizers_zoo.image.resume`); a call that finds one from the same config,
    budget, data and init resumes there (another run's is refused, unless ``start_over``), and the
    finished run removes it.

    Phases: :func:`training_budget`, :func:`setup_training`, then per step :func:`apply_schedules`,
    :func:`sample_batch` and :func:`train_step`, every ``eval_every`` steps and at the end
    :func:`evaluate_and_save`, and :func:`finish_training`.
    """
    from accelerate.utils import set_seed

    tc = cfg.train
    total_steps, budget_s = training_budget(tc, steps, max_minutes)
    out_dir = Path(out_dir)
    set_seed(tc.seed)
    train_arrays = stack_modality(train_samples, cfg.modality, progress=progress)
    val_arrays = stack_modality(val_samples, cfg.modality, limit=tc.eval_samples, progress=progress)
    aux_key = cfg.loss.aux.modality
    aux_arrays = None if aux_key is None else stack_modality(train_samples, aux_key, progress=progress)
    ground_key = tc.token_noise_ground  # set only with token_noise > 0 (checked by the config)
    ground_arrays = None if ground_key is None else stack_modality(train_samples, ground_key, progress=progress)
    setup = setup_training(cfg, train_arrays, init)
    rank = setup.accelerator.process_index  # each process draws its own batches
    rng = np.random.default_rng(tc.seed if rank == 0 else [tc.seed, rank])
    flip_gen = torch.Generator().manual_seed(tc.seed + 1_000_003 * rank)
    log = TrainingLog()
    manifest = run_manifest(cfg, total_steps, budget_s, [train_arrays, val_arrays, aux_arrays, ground_arrays], init)
    step = load_resume(out_dir, manifest, start_over, setup, rng, flip_gen, log, tc.seed)
    if step:
        tqdm.write(f"resuming the interrupted run from step {step} ({out_dir / RESUME_DIR})")
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=f"train {cfg.modality} tokenizer",
        disable=not progress or not setup.accelerator.is_main_process,
    )
    setup.tokenizer.train()
    while step < total_steps:
        elapsed = time.monotonic() - log.t0
        if budget_s is not None and elapsed >= budget_s:
            break
        lr = apply_schedules(setup, cfg, schedule_progress(step, total_steps, elapsed, budget_s), step)
        images = sample_batch(setup.tokenizer, train_arrays, tc, rng, flip_gen, aux_arrays, ground_arrays)
        loss, logs = train_step(setup, images, step, tc.grad_clip)
        log.losses.append(loss)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{logs['loss']:.4f}", recon=f"{logs['recon']:.4f}", lr=f"{lr:.1e}")
        if step % tc.eval_every == 0 and step < total_steps:
            evaluate_and_save(setup, cfg, val_arrays, log, step, out_dir)
        if step < total_steps and (step % tc.eval_every == 0 or (tc.save_every and step % tc.save_every == 0)):
            save_resume(out_dir, setup, step, rng, flip_gen, log)
    bar.close()
    evaluate_and_save(setup, cfg, val_arrays, log, step, out_dir)
    result = finish_training(setup, cfg, log, out_dir)
    finish_resume(out_dir, setup.accelerator)
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
