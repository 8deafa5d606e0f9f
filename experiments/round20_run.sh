#!/usr/bin/env bash
# Round 20 of issue 16 (docs/experiments/default_model.md): round 19's model on 16 x 16 rgb tokens
# (runs/r19_frame_more, after experiments/round19_run.sh) trained on for two more hours on the same
# drawing mixture, with a fresh warm-up and cosine over the wall time, to see whether drawing keeps
# gaining towards the shipped model's figures once it has had about as many steps on its tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
TOK=runs/tok/rgb16_pruned
[[ -e runs/r20_long/model/model.safetensors ]] || python train.py --config experiments/configs/train/r19_rgb16_frame.yaml \
  --out runs/r20_long --init-from runs/r19_frame_more/model --resume auto max_minutes=120 optim.lr=2e-4 \
  optim.warmup_steps=100 checkpoint_every=500 keep_checkpoints=12 > runs/r20_long.log 2>&1
bash scripts/bundle_world_model.sh runs/r20_long/model runs/r20_long/bundle $TOK
python bench/eval_world.py --model runs/r20_long/bundle --num 256 --out runs/r20_long/eval_world --no-progress
