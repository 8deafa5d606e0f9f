#!/usr/bin/env bash
# Round 22 of issue 16 (docs/experiments/default_model.md): the shipped recipe's stage 1 from scratch,
# 1,500 steps (experiments/configs/train/r21_ab.yaml, round 21's a and d beside these), with untied heads:
#   e: token rows at unit std (token_init_std 1.0), untied heads
#   f: token rows at 0.02 as shipped, untied heads (the control for untying alone)
# then the shorter recipe with e's init (experiments/round22_build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS=1
ab() {  # variant overrides...
  local v=$1
  shift
  python train.py --config experiments/configs/train/r21_ab.yaml --out "runs/r22_ab_$v" --resume auto "$@" \
    > "runs/r22_ab_$v.log" 2>&1
}
ab e model.overrides.token_init_std=1.0 model.overrides.tie_embeddings=false &
ab f model.overrides.tie_embeddings=false &
wait
export OMP_NUM_THREADS=2
for v in e f; do
  bash scripts/bundle_world_model.sh "runs/r22_ab_$v/model" "runs/r22_ab_$v/bundle"
  python bench/eval_world.py --model "runs/r22_ab_$v/bundle" --num 256 --tasks caption_to_rgb,caption_to_bboxes_to_rgb \
    --out "runs/r22_ab_$v/eval_draw" --no-progress
done
bash experiments/round22_build.sh runs/r22_build
