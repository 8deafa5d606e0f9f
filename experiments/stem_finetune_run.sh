#!/usr/bin/env bash
# Round 8 of issue 16 (docs/experiments/default_model.md): the stage-1 default model (runs/default, from
# scripts/build_default_model.sh) continued for 4,000 steps with a new conv_image patch stem, or as it is
# (control: configs/train/world_default_continued.yaml, the shipped stage 2: same data, masking, schedule
# and steps); then the bundle and the eval, beside the shipped one (nothing in models/ is touched). About
# 40 min of training each on 2 CPU cores with native bf16. (Round 8 continued the round-3 model's fp16
# bundle weights, models/world-default/model at commit cb8e38f.)
#   bash experiments/stem_finetune_run.sh [conv_image|control]    # runs/r8_stem_ft, runs/r8_control_ft
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
ARM=${1:-conv_image}
case $ARM in
  conv_image) RUN=runs/r8_stem_ft; EXTRA=(model.patch_stem=conv_image model.freeze_trunk_steps=250) ;;
  control) RUN=runs/r8_control_ft; EXTRA=() ;;
  *) echo "stem_finetune_run.sh: unknown arm '$ARM' (expected conv_image or control)" >&2; exit 2 ;;
esac
python train.py --config configs/train/world_default_continued.yaml --out "$RUN" --resume auto \
  model.init_from=runs/default/model "${EXTRA[@]}"
bash scripts/bundle_world_model.sh "$RUN/model" "$RUN/bundle"
python bench/eval_world.py --model "$RUN/bundle" --num 256 --out "$RUN/eval_world"
