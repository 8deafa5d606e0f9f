#!/usr/bin/env bash
# Rounds 10 and 11 of issue 16 (docs/experiments/default_model.md): the round-3 model (stage 1 of the
# shipped default, models/world-default/model at commit cb8e38f) given a conv_image stem whose CNN path
# was pretrained on the world's segmentation (fourm-stem pretrain, 8 min), then continued exactly as the
# stage 2 of round 8's shipped model (configs/train/world_default_continued.yaml, 4,000 steps), which is
# round 10's control. Needs data/world_model and data/world_model_tokens
# (experiments/model_tokens_from_bundle.sh); round 10 made them before the world's objects stood on the
# ground (before commit 3b03be8), round 11 (shipped) after. About 64 min of training on 2 CPU cores
# without AMX.
#   bash experiments/stem_pretrain_run.sh [NAME]   # runs/NAME_init, runs/NAME_ft (default r10; resumes)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
NAME=${1:-r10}
BASE=runs/r3_model
if [[ ! -e $BASE/model.safetensors ]]; then
  mkdir -p "$BASE"
  for f in config.json model.safetensors; do git show "cb8e38f:models/world-default/model/$f" > "$BASE/$f"; done
fi
if [[ ! -e runs/${NAME}_init/stem_pretrain.json ]]; then
  fourm-stem pretrain --model "$BASE" --data data/world_model --out "runs/${NAME}_init"
fi
python train.py --config configs/train/world_default_continued.yaml --out "runs/${NAME}_ft" --resume auto \
  "model.init_from=runs/${NAME}_init"
bash scripts/bundle_world_model.sh "runs/${NAME}_ft/model" "runs/${NAME}_ft/bundle"
python bench/eval_world.py --model "runs/${NAME}_ft/bundle" --num 256 --out "runs/${NAME}_ft/eval_world"
