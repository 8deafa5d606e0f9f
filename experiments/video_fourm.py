"""Video experiment, after training (docs/experiments/video.md, experiments/video_fourm.sh): a bundle of
the trained FourM, teacher-forced caption -> clip losses, MaskGIT clips from val captions (with and
without the true first frame) scored by the rgb checker, and pictures.

    OMP_NUM_THREADS=1 python experiments/video_fourm.py --run runs/video_fourm/train \
        --tokens runs/video_fourm/tokens --raw runs/video/world_video --out runs/video_fourm
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fourm.core.batch import MultimodalBatch
from fourm.data.raw_dataset import load_raw_dataset
from fourm.eval.world_scores import checker_scores, psnr
from fourm.generation.assemble import assemble_bundle
from fourm.generation.pipeline import FourMPipeline
from fourm.training.config import load_train_config
from fourm.training.data import build_training_data
from fourm.utils.video import save_frame_strip

EXTRA = Path("configs/modalities/extra")
CAPTION, VIDEO, S = "video_caption", "video", 64  # S: tokens of frame 0


def shuffled_inputs(batch: MultimodalBatch) -> MultimodalBatch:
    """Every row's encoder input (its caption) replaced by the next row's."""
    roll = lambda t: None if t is None else t.roll(1, dims=0)  # noqa: E731
    return dataclasses.replace(
        batch, enc_tokens=roll(batch.enc_tokens), enc_modality=roll(batch.enc_modality),
        enc_position=roll(batch.enc_position), enc_valid=roll(batch.enc_valid),
    )  # fmt: skip


def teacher_forced(pipe: FourMPipeline, config: str, tokens: str) -> dict[str, float]:
    """caption_to_video val task (whole caption -> 128 of 320 clip tokens, 150 val clips): the loss with the
    true caption, another clip's caption, and a unigram model of the train clip tokens."""
    cfg = load_train_config(config)
    cfg.data.datasets[0].path = tokens
    data = build_training_data(cfg, pipe.model.config.modalities)
    ds = data.val_tasks["caption_to_video"]
    batch = MultimodalBatch.collate([ds[i] for i in range(len(ds))])
    out = {}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for label, b in (("true_caption", batch), ("other_caption", shuffled_inputs(batch))):
            _, per = pipe.model.loss(b)
            out[label] = float(per.get(f"loss_{VIDEO}", per.get(VIDEO, float("nan"))))
    from fourm.data.token_dataset import load_token_dataset

    dsd, _ = load_token_dataset(tokens)
    train = np.asarray(dsd["train"][VIDEO], dtype=np.int64)
    val = np.asarray(dsd["val"][VIDEO], dtype=np.int64)
    p = (np.bincount(train.ravel(), minlength=1024) + 1.0) / (train.size + 1024)
    out["unigram"] = float(-np.log(p[val.ravel()]).mean())
    return out


def motion(clips: np.ndarray) -> float:
    """Mean absolute change between consecutive frames (0-255) of clips (N, T, H, W, 3)."""
    return float(np.abs(np.diff(clips.astype(np.float32), axis=1)).mean())


def clip_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR (dB, 0-255 range) over frames 1..T-1 of clip pairs (N, T, H, W, 3)."""
    return float(np.mean([psnr(x[t], y[t]) for x, y in zip(a, b) for t in range(1, a.shape[1])]))


def small_gif(clip: np.ndarray, path: Path, colors: int = 32) -> None:
    """An animated GIF (4 fps) of ``clip`` (T, H, W, 3) with one undithered palette: small files for the docs."""
    frames = [Image.fromarray(f) for f in clip]
    palette = Image.fromarray(np.concatenate(list(clip), axis=0)).quantize(colors, dither=Image.Dither.NONE)
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=250, loop=0, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True, help="train.py run directory (its model/)")
    p.add_argument("--tokens", required=True)
    p.add_argument("--raw", required=True, help="raw clip dataset (val captions and clips)")
    p.add_argument("--tokenizer", default="runs/video/tokenizer/tokenizer")
    p.add_argument("--config", default="configs/train/video_tiny.yaml")
    p.add_argument("--out", required=True)
    p.add_argument("--num", type=int, default=32, help="val clips to generate")
    p.add_argument("--steps", type=int, default=16, help="MaskGIT steps")
    p.add_argument("--pictures", default="docs/experiments/video", help="folder for the 4 GIFs and the strip")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    bundle = out / "bundle"
    if not (bundle / "model").is_dir():
        assemble_bundle(Path(args.run) / "model", bundle, base="models/world-default",
                        added=[EXTRA / "video.yaml", EXTRA / "video_caption.yaml"],
                        tokenizers={VIDEO: args.tokenizer})  # fmt: skip
    pipe = FourMPipeline.from_pretrained(bundle)
    metrics: dict = {"teacher_forced_loss": teacher_forced(pipe, args.config, args.tokens)}
    print("teacher-forced:", metrics["teacher_forced_loss"], flush=True)

    val = load_raw_dataset(args.raw)["val"]
    rows = [val[i] for i in range(args.num)]
    captions = [r["caption"] for r in rows]
    truth = np.stack([np.asarray(r["video"], dtype=np.uint8) for r in rows])  # (N, T, H, W, 3)
    codec = pipe.codecs[VIDEO]
    recon = np.stack(codec.decode(codec.encode(list(truth))))  # the tokenizer's ceiling
    target = pipe.default_target(VIDEO, steps=args.steps)
    t0 = time.perf_counter()
    free = pipe.generate_batch([{CAPTION: c} for c in captions], [target], seed=0, progress=False)
    gen = np.stack(free.values[VIDEO])
    t_free = time.perf_counter() - t0
    roar = pipe.default_target(VIDEO, scheme="roar", steps=args.steps, guidance_scale=3.0)  # random order
    gen_roar = np.stack(
        pipe.generate_batch([{CAPTION: c} for c in captions], [roar], progress=False).values[VIDEO]
    )
    t0 = time.perf_counter()
    given = np.stack([
        pipe.generate({CAPTION: c}, [target], partial={VIDEO: clip[0]}, seed=0, progress=False).values[VIDEO][0]
        for c, clip in zip(captions, truth)
    ])  # fmt: skip
    t_given = time.perf_counter() - t0
    other = captions[1:] + captions[:1]
    firsts = lambda clips: [c[0] for c in clips]  # noqa: E731
    lasts = lambda clips: [c[-1] for c in clips]  # noqa: E731
    metrics["checker_first_frame"] = {
        "generated_vs_own_caption": checker_scores(firsts(gen), captions),
        "generated_vs_other_caption": checker_scores(firsts(gen), other),
        "generated_last_frame_vs_own_caption": checker_scores(lasts(gen), captions),
        "roar_guidance3_vs_own_caption": checker_scores(firsts(gen_roar), captions),
        "roar_guidance3_vs_other_caption": checker_scores(firsts(gen_roar), other),
        "roar_guidance3_last_frame_vs_own_caption": checker_scores(lasts(gen_roar), captions),
        "tokenizer_recon_vs_own_caption": checker_scores(firsts(recon), captions),
        "truth_vs_own_caption": checker_scores(firsts(truth), captions),
    }
    static = np.repeat(truth[:, :1], truth.shape[1], axis=1)  # the first frame held still
    metrics["first_frame_given"] = {
        "psnr_frames_1_7": {"generated": clip_psnr(given, truth), "first_frame_held": clip_psnr(static, truth),
                            "tokenizer_recon": clip_psnr(recon, truth)},
        "motion": {"generated_given_frame0": motion(given), "generated_caption_only": motion(gen),
                   "roar_guidance3_caption_only": motion(gen_roar),
                   "truth": motion(truth), "tokenizer_recon": motion(recon)},
    }  # fmt: skip
    metrics["timing_s"] = {"caption_only_batch": t_free, "first_frame_given_loop": t_given, "num": args.num}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))

    pics = Path(args.pictures)
    pics.mkdir(parents=True, exist_ok=True)
    for i in range(4):  # side by side: truth | maskgit | roar + guidance 3 | maskgit given frame 0
        small_gif(
            np.concatenate([truth[i], gen[i], gen_roar[i], given[i]], axis=2), pics / f"caption_{i}.gif"
        )
    rows = [c for i in range(4) for c in (truth[i], gen[i], gen_roar[i], given[i])]
    strip = save_frame_strip(rows, pics / "strip.png")
    Image.open(strip).quantize(64).save(strip, optimize=True)  # a palette PNG: small enough for the docs
    (pics / "captions.txt").write_text("".join(f"{i}: {captions[i]}\n" for i in range(4)))


if __name__ == "__main__":
    main()
