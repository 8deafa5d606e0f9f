#!/usr/bin/env bash
# World video + joint image-video tokenizer (docs/experiments/video.md): 1,500 clips of 8 frames at 64x64,
# then the tokenizer of configs/tokenizers/video.yaml trained in two time-boxed stages (single frames,
# then frames + clips) on one CPU thread; metrics.json holds per-frame PSNR, image PSNR and flicker.
#   bash experiments/video_tokenizer.sh            # about 15 min on one core
#   NUM=40 IMAGE_MIN=0.2 JOINT_MIN=0.2 OUT=/tmp/vt bash experiments/video_tokenizer.sh   # smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
OUT="${OUT:-runs/video}"
NUM="${NUM:-1500}"
DATA="$OUT/world_video"
fourm-data world-video --out "$DATA" --num "$NUM" --frames 8 --seed 0 --val-fraction 0.1 --workers 2 --overwrite
fourm-tokenizer train-video --config configs/tokenizers/video.yaml --data "$DATA" --out "$OUT/tokenizer" --overwrite \
  train.image_stage.max_minutes="${IMAGE_MIN:-4}" train.joint_stage.max_minutes="${JOINT_MIN:-8.5}" \
  train.image_stage.steps=100000 train.joint_stage.steps=100000 train.log_every=100 \
  2>&1 | tee "$OUT/train.log"
