#!/usr/bin/env bash
# Round 24 of issue 16: runs/r22_full trained on with the drawing entries raised (r24_chain_draw.yaml), bundled,
# scored (bench/eval_world.py --num 256, val 0-255) and the quick start's prompt checked with seeds 0-5. Resumable.
#   bash experiments/round24_chain_draw.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
R=runs/r24_chain_draw
python train.py --config experiments/configs/train/r24_chain_draw.yaml --out "$R" --resume auto
[[ -e $R/bundle/model ]] || bash scripts/bundle_world_model.sh "$R/model" "$R/bundle"
[[ -e $R/eval/eval_world.json ]] || python bench/eval_world.py --model "$R/bundle" --num 256 --out "$R/eval" --no-progress
for s in 0 1 2 3 4 5; do
  python generate.py --model "$R/bundle" --cond caption="a small red circle to the left of a large blue square" \
    --target bboxes rgb --num-samples 4 --seed "$s" --out "$R/quickstart_seed$s" --overwrite > /dev/null
  python experiments/check_generation.py "$R/quickstart_seed$s" | tail -1
done
