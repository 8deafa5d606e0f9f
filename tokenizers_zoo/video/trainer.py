"""Two-stage training of the video tokenizer (images first, then images and clips together) and its metrics.

    result = train_video_tokenizer(cfg, train_clips, val_clips, "outputs/tok_video")

Stage ``image`` trains on single frames drawn from the training clips (one-frame clips: only the
image path and group 0 learn); stage ``joint`` adds batches of whole clips. Each stage has AdamW with
linear warm-up and a cosine decay that follows whichever ends first, its ``steps`` or its
``max_minutes``. After each stage the held-out clips are evaluated (:func:`evaluate_video`);
``out`` receives ``tokenizer/`` (final), ``image_stage/`` (after stage one), ``metrics.json``,
``reconstruction.gif`` (ground truth | reconstruction side by side) and ``reconstructions.png``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_write_text
from fourm.utils.loop_state import LoopState, load_loop_state, save_loop_state
from fourm.utils.outputs import claim_partial
from fourm.utils.precision import resolve_precision
from fourm.utils.video import save_frame_strip, save_gif
from tokenizers_zoo.image.metrics import psnr
from tokenizers_zoo.image.resume import RESUME_DIR, array_digest, resume_config
from tokenizers_zoo.video.config import StageConfig, VideoTokenizerConfig
from tokenizers_zoo.video.tokenizer import VideoTokenizer


def _autocast_dtype(cfg: VideoTokenizerConfig) -> torch.dtype | None:
    """bf16 when ``train.precision`` resolves to bf16 on the CPU, else None (fp32)."""
    return torch.bfloat16 if resolve_precision(cfg.train.precision, "cpu") == "bf16" else None


def _lr_factor(step: int, progress: float, warmup: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _batch(tokenizer: VideoTokenizer, clips: np.ndarray, n: int, single_frames: bool, hflip: bool,
           gen: torch.Generator) -> torch.Tensor:  # fmt: skip
    """``n`` random clips (B, T, 3, H, W) or random single frames (B, 1, 3, H, W), randomly mirrored."""
    idx = torch.randint(len(clips), (n,), generator=gen).numpy()
    if single_frames:
        t = torch.randint(clips.shape[1], (n,), generator=gen).numpy()
        x = tokenizer.preprocess(clips[idx, t][:, None])
    else:
        x = tokenizer.preprocess(clips[idx])
    if hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
    return x


@torch.no_grad()
def evaluate_video(tokenizer: VideoTokenizer, clips: np.ndarray, batch_size: int = 16,
                   dtype: torch.dtype | None = torch.bfloat16) -> tuple[dict, np.ndarray, np.ndarray]:  # fmt: skip
    """Metrics of ``clips`` (N, T, H, W, 3) uint8 and the reconstructions (clip path, frame-by-frame path).

    psnr / psnr_per_frame: each clip encoded as a clip, per-frame PSNR (dB, data range 1) averaged;
    image_psnr: every frame encoded on its own as an image; temporal: mean |x_t - x_{t-1}| (0-255) of
    the reconstruction and of the ground truth, and flicker = the same for the reconstruction on the
    pixels the ground truth keeps unchanged (0 is perfect), for both paths.
    """
    tokenizer.eval()
    n, t = clips.shape[:2]
    recon, frames = [], []
    for start in range(0, n, batch_size):
        x = tokenizer.preprocess(clips[start : start + batch_size])  # (B, T, 3, H, W)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            recon.append(tokenizer.postprocess(tokenizer.decode(tokenizer.encode(x), t)))
            images = x.reshape(-1, *x.shape[2:])  # (B*T, 3, H, W), each frame an image
            frames.append(
                tokenizer.postprocess(tokenizer.decode(tokenizer.encode(images), 1)).reshape(
                    x.shape[0], t, *clips.shape[2:]
                )
            )
    recon_clips, recon_frames = np.concatenate(recon), np.concatenate(frames)
    gt = torch.from_numpy(clips).float() / 255.0

    def per_frame_psnr(r: np.ndarray) -> torch.Tensor:  # (N, T)
        return psnr(torch.from_numpy(r).float().reshape(n * t, -1) / 255.0, gt.reshape(n * t, -1)).reshape(
            n, t
        )

    clip_psnr, image_psnr = per_frame_psnr(recon_clips), per_frame_psnr(recon_frames)
    metrics = {
        "clips": n,
        "frames": t,
        "tokens_per_clip": tokenizer.tokens_for(t),
        "tokens_per_image": tokenizer.tokens_for(1),
        "psnr": float(clip_psnr.mean()),
        "psnr_per_frame": [round(float(v), 3) for v in clip_psnr.mean(0)],
        "image_psnr": float(image_psnr.mean()),
        "image_psnr_per_frame": [round(float(v), 3) for v in image_psnr.mean(0)],
    }
    if t > 1:
        g = clips.astype(np.int16)
        gt_diff = np.abs(g[:, 1:] - g[:, :-1])  # (N, T-1, H, W, 3)
        still = (gt_diff.max(-1) == 0)[..., None]  # ground truth unchanged at this pixel
        metrics["gt_frame_diff"] = float(gt_diff.mean())
        for name, r in (("", recon_clips), ("image_", recon_frames)):
            d = np.abs(r[:, 1:].astype(np.int16) - r[:, :-1])
            metrics[f"{name}recon_frame_diff"] = float(d.mean())
            metrics[f"{name}flicker"] = float((d * still).sum() / max(still.sum() * 3, 1))
    return metrics, recon_clips, recon_frames


def _run_stage(name: str, stage: StageConfig, tokenizer: VideoTokenizer, cfg: VideoTokenizerConfig,
               clips: np.ndarray, gen: torch.Generator, log: Callable[[str], None],
               state_path: Path | None = None) -> dict:  # fmt: skip
    """Train one stage -> its figures. With ``state_path`` the stage's state is saved there every
    ``train.save_every`` steps and when it ends, and a saved one is resumed (a finished stage: its
    figures, the tokenizer and RNGs as they were at its end)."""
    tc = cfg.train
    params = [p for p in tokenizer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.99))
    dtype = _autocast_dtype(cfg)
    budget = stage.max_minutes * 60 if stage.max_minutes else None
    tokenizer.train()
    start, step, logs, losses = time.perf_counter(), 0, {}, []
    modules = {"tokenizer": tokenizer}
    saved = load_loop_state(state_path, modules, optimizer) if state_path is not None else None
    if saved is not None:
        gen.set_state(saved.extra["generator"])
        if "figures" in saved.extra:
            log(f"[{name}] done before: resumed at its end")
            return saved.extra["figures"]
        step, losses, logs, start = saved.step, saved.losses, saved.extra["logs"], time.perf_counter() - saved.elapsed
        log(f"[{name}] resuming at step {step}")

    def save(extra: dict) -> None:
        if state_path is not None:
            loop = LoopState(step, losses, time.perf_counter() - start, {"generator": gen.get_state(), **extra})
            save_loop_state(state_path, loop, modules, optimizer)

    while step < stage.steps:
        elapsed = time.perf_counter() - start
        if budget is not None and elapsed >= budget:
            break
        progress = max(step / max(stage.steps, 1), elapsed / budget if budget else 0.0)
        for group in optimizer.param_groups:
            group["lr"] = tc.lr * _lr_factor(step, progress, tc.warmup_steps, tc.min_lr_ratio)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            total = torch.zeros(())
            logs = {}
            if stage.image_batch:
                loss, part = tokenizer.loss(_batch(tokenizer, clips, stage.image_batch, True, tc.hflip, gen))
                total, logs = total + loss, {f"image_{k}": v for k, v in part.items()}
            if stage.video_batch:
                loss, part = tokenizer.loss(_batch(tokenizer, clips, stage.video_batch, False, tc.hflip, gen))
                total = total + loss
                logs.update({f"video_{k}": v for k, v in part.items()})
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        optimizer.step()
        step += 1
        losses.append(float(total.detach()))
        if step % tc.log_every == 0 or step == 1:
            shown = {k: round(v, 4) for k, v in logs.items() if k.endswith(("recon", "perplexity"))}
            log(f"[{name}] step {step} ({time.perf_counter() - start:.0f}s) {json.dumps(shown)}")
        if step % tc.save_every == 0 and step < stage.steps:
            save({"logs": logs})
    seconds = time.perf_counter() - start
    figures = {"steps": step, "seconds": round(seconds, 1), "last": {k: round(v, 4) for k, v in logs.items()}}
    save({"logs": logs, "figures": figures})
    return figures


def train_video_tokenizer(cfg: VideoTokenizerConfig, train_clips: np.ndarray, val_clips: np.ndarray,
                          out: str | Path, log: Callable[[str], None] = print, start_over: bool = False) -> dict:  # fmt: skip
    """Train a new tokenizer in two stages on uint8 clips (N, T, H, W, 3); returns (and writes to
    ``out/metrics.json``) the per-stage training figures and evaluations. The stages' states live in
    ``out/resume/`` until the run ends: a call with the same config and clips resumes there, another
    run's is refused unless ``start_over``."""
    for what, clips in (("train", train_clips), ("val", val_clips)):
        if clips.ndim != 5 or len(clips) == 0 or clips.shape[1] > cfg.max_frames:
            raise FourmError(
                f"{what} clips must be (N >= 1, T <= {cfg.max_frames}, H, W, 3), got {clips.shape}"
            )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resume = out / RESUME_DIR  # each stage's state: an interrupted run resumes there
    manifest = {"config": resume_config(cfg), "inputs": {"clips": array_digest([train_clips, val_clips])}}
    claim_partial(resume, manifest, start_over, hint="pass --overwrite to start over")
    torch.manual_seed(cfg.train.seed)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    tokenizer = VideoTokenizer(cfg)
    val = val_clips[: cfg.train.eval_clips]
    dtype = _autocast_dtype(cfg)
    result: dict = {"config": cfg.to_dict(), "threads": torch.get_num_threads()}
    for name, stage in (("image", cfg.train.image_stage), ("joint", cfg.train.joint_stage)):
        if stage.steps == 0:
            continue
        figures = _run_stage(name, stage, tokenizer, cfg, train_clips, gen, log, resume / f"{name}.pt")
        metrics, recon, _ = evaluate_video(tokenizer, val, dtype=dtype)
        result[f"{name}_stage"] = {**figures, "eval": metrics}
        log(f"[{name}] eval: psnr {metrics['psnr']:.2f} dB, image psnr {metrics['image_psnr']:.2f} dB, "
            f"per frame {metrics['psnr_per_frame']}")  # fmt: skip
        tokenizer.save_pretrained(out / ("image_stage" if name == "image" else "tokenizer"))
        atomic_write_text(out / "metrics.json", json.dumps(result, indent=2) + "\n")
    if not (out / "tokenizer").is_dir():
        tokenizer.save_pretrained(out / "tokenizer")
    _, recon, frames = evaluate_video(tokenizer, val[:4], dtype=dtype)
    save_gif(
        np.concatenate([val[0], recon[0], frames[0]], axis=2), out / "reconstruction.gif", fps=4, scale=2
    )
    save_frame_strip(
        [c for k in range(len(recon)) for c in (val[k], recon[k])], out / "reconstructions.png", scale=2
    )
    shutil.rmtree(resume, ignore_errors=True)
    return result
