#!/usr/bin/env bash
# Round 6 of issue 16 (docs/experiments/default_model.md): the default recipe with a conv patch stem
# (FourMConfig.patch_stem: conv, fourm/model/patch_stem.py) instead of 4M's linear patch projection,
# at the shipped round-3 run's step count (7,567 steps; the LR schedule then follows the steps as the
# shipped run's followed its 80 minutes), on the same token dataset (scripts/build_default_model.sh
# stage 3). Then the bundle and the eval, beside the shipped one (nothing in models/ is touched).
# About 70 min of training on 2 CPU cores with native bf16.
#   bash experiments/patch_stem_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
RUN=runs/default_r6_conv
TOK=runs/default_stage/tokenizers
EXTRA=configs/modalities/extra
python train.py --config configs/train/world_default.yaml --out "$RUN" --resume auto \
  model.overrides.patch_stem=conv steps=7567
args=()
for mod in rgb depth semseg edges caption_embedding; do args+=(--tokenizer "$mod=$TOK/$mod"); done
for mod in caption bboxes metadata color_palette; do args+=(--tokenizer "$mod=$TOK/text"); done
fourm-bundle "$RUN/model" "$RUN/bundle" --overwrite --base models/world-default \
  --add-modality "$EXTRA/caption_embedding.yaml" --add-modality "$EXTRA/rgb_pixels.yaml" \
  --add-modality "$EXTRA/box_map.yaml" "${args[@]}"
cp configs/generation/world_default.json "$RUN/bundle/generation.json"
python bench/eval_world.py --model "$RUN/bundle" --num 256 --out "$RUN/eval_world"
