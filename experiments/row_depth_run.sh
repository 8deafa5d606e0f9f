#!/usr/bin/env bash
# Round 11 of issue 16 (docs/experiments/default_model.md): round 10's recipe (the round-3 model,
# fourm-stem pretrain, then configs/train/world_default_continued.yaml for 4,000 steps) on the world
# whose objects stand on the ground (fourm.data.world.scene.row_depths: depth follows the row, so the
# picture shows it). Needs data/world_model* made at this commit with the shipped tokenizers
# (experiments/model_tokens_from_bundle.sh). About 72 min on 2 CPU cores without AMX.
#   bash experiments/row_depth_run.sh        # runs/r11_init, runs/r11_ft (resumes from its checkpoints)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
BASE=runs/r3_model
if [[ ! -e $BASE/model.safetensors ]]; then
  mkdir -p "$BASE"
  for f in config.json model.safetensors; do git show "cb8e38f:models/world-default/model/$f" > "$BASE/$f"; done
fi
if [[ ! -e runs/r11_init/stem_pretrain.json ]]; then
  fourm-stem pretrain --model "$BASE" --data data/world_model --out runs/r11_init
fi
python train.py --config configs/train/world_default_continued.yaml --out runs/r11_ft --resume auto \
  model.init_from=runs/r11_init
bash scripts/bundle_world_model.sh runs/r11_ft/model runs/r11_ft/bundle
python bench/eval_world.py --model runs/r11_ft/bundle --num 256 --out runs/r11_ft/eval_world
