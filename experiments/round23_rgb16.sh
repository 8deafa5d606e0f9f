#!/usr/bin/env bash
# Round 23 of issue 16 (docs/experiments/default_model.md): stage 1 of the shipped recipe from scratch on
# 16 x 16 rgb tokens (runs/tok/rgb16_pruned, the tokenizer of round 19: shape ceiling 0.919) with unit token
# rows and untied heads (round 22) and every image grid in one 8 x 8 frame, against the same stage 1 on the
# shipped 8 x 8 tokens (experiments/round22_full.sh's runs/r22_full/s1): the same 7,567 steps on a steps-only
# schedule, 128 + 128 tokens a sample (MaskGIT's targets are half of the 256 rgb tokens at most), then each
# bundled and scored on drawing at the guidance scales of experiments/guidance_sweep.sh (val scenes 256-511).
# Resumable.
#   bash experiments/round23_rgb16.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS=data/world_model_tokens16
# shellcheck source=experiments/round22_stages.sh
. experiments/round22_stages.sh
R=runs/r23_rgb16
stage world_default "$R/s1" model.overrides.token_init_std=1.0 model.overrides.tie_embeddings=false \
  model.overrides.image_frame=8 steps=7567 max_minutes=null
[[ -e $R/s1_bundle/model ]] || bash scripts/bundle_world_model.sh "$R/s1/model" "$R/s1_bundle" runs/tok/rgb16_pruned
[[ -e runs/r22_full/s1_bundle/model ]] || bash scripts/bundle_world_model.sh runs/r22_full/s1/model runs/r22_full/s1_bundle
for run in "$R" runs/r22_full; do
  bash experiments/guidance_sweep.sh "$run/s1_bundle" "$run/s1_guidance" "5 8 12"
done
