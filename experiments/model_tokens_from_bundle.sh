#!/usr/bin/env bash
# The default model's token dataset (data/world_model_tokens) made with the tokenizers a bundle ships
# (models/world-default by default: the fp16 tokenizers that made the shipped model's tokens), so a
# FourM experiment on a fresh machine skips the build's 40-minute tokenizer stage. The same commands as
# scripts/build_default_model.sh stages 2-3 (seed 1, 24,000 scenes, MiniLM caption embeddings).
# The tokenizers are also copied to runs/default_stage/tokenizers, where scripts/bundle_world_model.sh
# looks for them. About 10 min on 2 CPU cores. Stages whose output exists are skipped.
#   bash experiments/model_tokens_from_bundle.sh [BUNDLE]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
BUNDLE=${1:-models/world-default}
EXTRA=configs/modalities/extra
if [[ ! -d $BUNDLE/tokenizers ]]; then
  echo "model_tokens_from_bundle.sh: $BUNDLE has no tokenizers/ folder (expected a bundle)" >&2; exit 2
fi
if [[ ! -e runs/default_stage/tokenizers ]]; then
  mkdir -p runs/default_stage && cp -r "$BUNDLE/tokenizers" runs/default_stage/tokenizers
fi
if [[ ! -e data/world_model ]]; then
  fourm-data world --out data/world_model --num 24000 --seed 1 --val-fraction 0.05
fi
if [[ ! -e data/world_model_ce ]]; then
  fourm-data embed --data data/world_model --source caption --name caption_embedding --out data/world_model_ce
fi
if [[ ! -e data/world_model_tokens ]]; then
  fourm-data tokenize --data data/world_model_ce --out data/world_model_tokens --tokenizer-root "$BUNDLE" \
    --add-modality "$EXTRA/caption_embedding.yaml" --add-modality "$EXTRA/rgb_pixels.yaml" \
    --add-modality "$EXTRA/box_map.yaml" \
    --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette,caption_embedding,rgb_pixels,box_map
fi
