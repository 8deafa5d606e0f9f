#!/usr/bin/env bash
# Round 22 of issue 16 (docs/experiments/default_model.md): the shipped recipe's FourM stages at full length
# (scripts/build_default_model.sh, step 4) with token rows at unit std and untied heads, on the shipped tokens
# and tokenizers. Stage 1 runs the steps the shipped stage 1 did in its 80 minutes (7,567) on a steps-only
# schedule, so the run does not depend on what else the machine does. Resumable: every stage resumes from its
# last checkpoint; a finished stage is skipped.
#   bash experiments/round22_full.sh [RUN_DIR]      # default runs/r22_full
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
R=${1:-runs/r22_full}
DATA=(data.datasets.0.path=data/world_model_tokens_old)  # the shipped model's tokens
stage() {  # config out [overrides...]: train unless its model is saved
  local config=$1 out=$2
  shift 2
  if [[ ! -e "$out/model/config.json" ]]; then
    python train.py --config "configs/train/$config.yaml" --out "$out" --resume auto "${DATA[@]}" "$@"
  fi
}
stage world_default "$R/s1" model.overrides.token_init_std=1.0 model.overrides.tie_embeddings=false \
  steps=7567 max_minutes=null
if [[ ! -e "$R/stem/stem_pretrain.json" ]]; then
  fourm-stem pretrain --model "$R/s1/model" --data data/world_model --out "$R/stem"
fi
stage world_default_continued "$R/s2" model.init_from="$R/stem"
stage world_default_captions "$R/s3" model.init_from="$R/s2"
stage world_default_relations "$R/s4a" model.init_from="$R/s3"
stage world_default_relations "$R/s4b" model.init_from="$R/s4a"
stage world_default_relations_mix "$R/s5" model.init_from="$R/s4b"
bash scripts/bundle_world_model.sh "$R/s5/model" "$R/bundle"
python bench/eval_world.py --model "$R/bundle" --num 256 --out "$R/eval" --no-progress
