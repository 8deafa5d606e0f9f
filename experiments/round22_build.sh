#!/usr/bin/env bash
# Round 22 of issue 16 (docs/experiments/default_model.md): a shorter FourM recipe with unit token rows and
# untied heads (token_init_std 1.0, tie_embeddings false), on the shipped tokens and tokenizers, beside the
# shipped run. The shipped recipe's stages, shortened (scripts/build_default_model.sh, step 4):
#   s1  the mixture from scratch, 5,400 steps or 50 minutes (configs/train/world_default.yaml)
#   stem  its patch stem's CNN pretrained on segmentation (fourm-stem pretrain)
#   s2  2,000 steps of the mixture with the rgb -> caption task, peak lr 1e-3 (stages 2 and 3 in one)
#   s4  1,000 steps of caption -> bboxes alone (once, not twice)
#   s5  1,000 steps of the mixture with caption -> bboxes at 40%
# Resumable: every stage resumes from its last checkpoint; a finished stage is skipped.
#   bash experiments/round22_build.sh [RUN_DIR]      # default runs/r22_build
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
R=${1:-runs/r22_build}
DATA=(data.datasets.0.path=data/world_model_tokens_old)  # the shipped model's tokens
stage() {  # config out [overrides...]: train unless its model is saved
  local config=$1 out=$2
  shift 2
  if [[ ! -e "$out/model/config.json" ]]; then
    python train.py --config "configs/train/$config.yaml" --out "$out" --resume auto "${DATA[@]}" "$@"
  fi
}
stage world_default "$R/s1" model.overrides.token_init_std=1.0 model.overrides.tie_embeddings=false \
  steps=5400 max_minutes=50
if [[ ! -e "$R/stem/stem_pretrain.json" ]]; then
  fourm-stem pretrain --model "$R/s1/model" --data data/world_model --out "$R/stem"
fi
stage world_default_captions "$R/s2" model.init_from="$R/stem" optim.lr=1e-3
stage world_default_relations "$R/s4" model.init_from="$R/s2"
stage world_default_relations_mix "$R/s5" model.init_from="$R/s4"
bash scripts/bundle_world_model.sh "$R/s5/model" "$R/bundle"
python bench/eval_world.py --model "$R/bundle" --num 256 --out "$R/eval" --no-progress
