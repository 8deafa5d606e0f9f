#!/usr/bin/env bash
# The bundle of a FourM trained on the default model's token data (scripts/build_default_model.sh stage 3):
# its tokenizers (runs/default_stage/tokenizers, or RGB_TOKENIZER for rgb), the extra modalities' YAMLs,
# the shipped bundle's registry as the base, and the shipped generation defaults.
#   bash scripts/bundle_world_model.sh MODEL_DIR OUT_DIR [RGB_TOKENIZER]
set -euo pipefail
MODEL=$1 OUT=$2
TOK=runs/default_stage/tokenizers
EXTRA=configs/modalities/extra
args=(--tokenizer "rgb=${3:-$TOK/rgb}")
for mod in depth semseg edges caption_embedding; do args+=(--tokenizer "$mod=$TOK/$mod"); done
for mod in caption bboxes metadata color_palette; do args+=(--tokenizer "$mod=$TOK/text"); done  # one shared vocabulary
fourm-bundle "$MODEL" "$OUT" --overwrite --base models/world-default --add-modality "$EXTRA/caption_embedding.yaml" \
  --add-modality "$EXTRA/rgb_pixels.yaml" --add-modality "$EXTRA/box_map.yaml" "${args[@]}"
cp configs/generation/world_default.json "$OUT/generation.json"
