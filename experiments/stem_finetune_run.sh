#!/usr/bin/env bash
# Round 8 of issue 16 (docs/experiments/default_model.md): the shipped default model continued for 4,000
# steps with a new conv_image patch stem (experiments/configs/train/world_default_stem_ft.yaml), or as it
# is (control: same data, masking, schedule and steps); then the bundle and the eval, beside the shipped
# one (nothing in models/ is touched). About 40 min of training each on 2 CPU cores with native bf16.
#   bash experiments/stem_finetune_run.sh [conv_image|control]    # runs/r8_stem_ft, runs/r8_control_ft
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
ARM=${1:-conv_image}
case $ARM in
  conv_image) RUN=runs/r8_stem_ft; EXTRA=() ;;
  control) RUN=runs/r8_control_ft; EXTRA=(model.patch_stem=null model.freeze_trunk_steps=0) ;;
  *) echo "stem_finetune_run.sh: unknown arm '$ARM' (expected conv_image or control)" >&2; exit 2 ;;
esac
python train.py --config experiments/configs/train/world_default_stem_ft.yaml --out "$RUN" --resume auto "${EXTRA[@]}"
bash scripts/bundle_world_model.sh "$RUN/model" "$RUN/bundle"
python bench/eval_world.py --model "$RUN/bundle" --num 256 --out "$RUN/eval_world"
