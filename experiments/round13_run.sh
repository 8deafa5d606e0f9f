#!/usr/bin/env bash
# Round 13 of issue 16 (docs/experiments/default_model.md): does decoder depth help captions count?
# The shipped model (round 12, runs/r12_caption) continued for 2,000 more steps as the build's stage 3
# (configs/train/world_default_captions.yaml) two ways, side by side with one thread each:
#   runs/r13_grow  its decoder deepened 4 -> 6 blocks first (model.grow_decoder=[1,3], fourm.training.grow:
#                  a zero-output copy after blocks 1 and 3, so the grown model computes exactly what it did)
#   runs/r13_more  the same steps without growing (the control)
# Neither was adopted: better captions and segmentation, slightly worse generation (round 13).
# Each run is bundled and evaluated as the shipped one.
#   bash experiments/round13_run.sh   # resumes; a finished run is only bundled and evaluated
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
train() {  # NAME [overrides]
  local name=$1
  shift
  if [[ ! -e runs/$name/model/model.safetensors ]]; then
    OMP_NUM_THREADS=1 python train.py --config configs/train/world_default_captions.yaml --out "runs/$name" \
      --resume auto model.init_from=runs/r12_caption "$@" > "runs/$name.log" 2>&1
  fi
}
train r13_grow "model.grow_decoder=[1,3]" & grow=$!
train r13_more & more=$!
wait "$grow"
wait "$more"
for name in r13_grow r13_more; do
  bash scripts/bundle_world_model.sh "runs/$name/model" "runs/$name/bundle"
  python bench/eval_world.py --model "runs/$name/bundle" --num 256 --out "runs/$name/eval_world"
done
