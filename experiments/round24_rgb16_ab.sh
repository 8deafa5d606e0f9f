#!/usr/bin/env bash
# Round 24 of issue 16 (docs/experiments/default_model.md): does a model trained on 16 x 16 rgb tokens from
# the start draw the caption's shapes better? Round 22's A/B run e (experiments/round22_run.sh: the shipped
# stage 1 from scratch, 1,500 steps, unit token rows, untied heads, the shipped 8 x 8 tokens; caption -> rgb
# 0.488, shape acc 0.272) repeated on round 19's 16 x 16 tokens (runs/tok/rgb16_pruned, shape ceiling 0.919),
# every image grid in one 8 x 8 frame, then scored as e was (val scenes 0-255, guidance 5). Resumable.
#   bash experiments/round24_rgb16_ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
R=runs/r24_ab_rgb16
python train.py --config experiments/configs/train/r21_ab.yaml --out "$R" --resume auto \
  data.datasets.0.path=data/world_model_tokens16 model.overrides.token_init_std=1.0 \
  model.overrides.tie_embeddings=false model.overrides.image_frame=8
[[ -e $R/bundle/model ]] || bash scripts/bundle_world_model.sh "$R/model" "$R/bundle" runs/tok/rgb16_pruned
[[ -e $R/eval_draw/eval_world.json ]] || python bench/eval_world.py --model "$R/bundle" --num 256 \
  --tasks caption_to_rgb,caption_to_bboxes_to_rgb --out "$R/eval_draw" --no-progress
