#!/usr/bin/env bash
# Round 10 of issue 16 (docs/experiments/default_model.md): the round-3 model (stage 1 of the shipped
# default, models/world-default/model at commit cb8e38f) given a conv_image stem whose CNN path was
# pretrained on the world's segmentation (fourm-stem pretrain, 8 min), then continued exactly as the
# stage 2 of round 8's shipped model (configs/train/world_default_continued.yaml, 4,000 steps), which is
# this run's control. Needs data/world_model and data/world_model_tokens
# (experiments/model_tokens_from_bundle.sh). About 64 min of training on 2 CPU cores without AMX.
#   bash experiments/stem_pretrain_run.sh        # runs/r10_init, runs/r10_ft (resumes from its checkpoints)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
BASE=runs/r3_model
if [[ ! -e $BASE/model.safetensors ]]; then
  mkdir -p "$BASE"
  for f in config.json model.safetensors; do git show "cb8e38f:models/world-default/model/$f" > "$BASE/$f"; done
fi
if [[ ! -e runs/r10_init/stem_pretrain.json ]]; then
  fourm-stem pretrain --model "$BASE" --data data/world_model --out runs/r10_init
fi
python train.py --config configs/train/world_default_continued.yaml --out runs/r10_ft --resume auto \
  model.init_from=runs/r10_init
bash scripts/bundle_world_model.sh runs/r10_ft/model runs/r10_ft/bundle
python bench/eval_world.py --model runs/r10_ft/bundle --num 256 --out runs/r10_ft/eval_world
