#!/usr/bin/env bash
# Round 6 of issue 16 (docs/experiments/default_model.md): the default recipe with a conv patch stem
# (FourMConfig.patch_stem: conv, fourm/model/patch_stem.py) instead of 4M's linear patch projection,
# at the shipped round-3 run's step count (7,567 steps; the LR schedule then follows the steps as the
# shipped run's followed its 80 minutes), on the same token dataset (scripts/build_default_model.sh
# stage 3). Then the bundle and the eval, beside the shipped one (nothing in models/ is touched).
# Round 7: the same with patch_stem conv_image (a CNN over the whole image of the given patches; that stem
# had no linear path, runs/default_r7_conv_image). Round 8: conv_image with its linear path, runs/default_r8_conv_image.
# About 70 min of training on 2 CPU cores with AMX; on a CPU with AVX512-BF16 but no AMX (1.03 steps/s)
# the 110-minute cap stops it near step 6,000 (round 9). On a fresh machine, make the token dataset
# first: bash experiments/model_tokens_from_bundle.sh
#   bash experiments/patch_stem_run.sh [conv|conv_image]      # runs/default_r6_conv, runs/default_r8_conv_image
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
STEM=${1:-conv}
case $STEM in conv) RUN=runs/default_r6_conv ;; conv_image) RUN=runs/default_r8_conv_image ;;
  *) echo "patch_stem_run.sh: unknown stem '$STEM' (expected conv or conv_image)" >&2; exit 2 ;; esac
python train.py --config configs/train/world_default.yaml --out "$RUN" --resume auto \
  model.overrides.patch_stem="$STEM" steps=7567 max_minutes=110  # step-matched (the round-6 conv run: 80-min cap, 7,564 steps)
bash scripts/bundle_world_model.sh "$RUN/model" "$RUN/bundle"
python bench/eval_world.py --model "$RUN/bundle" --num 256 --out "$RUN/eval_world"
