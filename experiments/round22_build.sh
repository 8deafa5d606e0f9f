#!/usr/bin/env bash
# Round 22 of issue 16 (docs/experiments/default_model.md): a shorter FourM recipe with unit token rows and
# untied heads (token_init_std 1.0, tie_embeddings false), on the shipped tokens and tokenizers, beside the
# shipped run. The shipped recipe's stages, shortened (scripts/build_default_model.sh, step 4):
#   s1  the mixture from scratch, 5,400 steps or 50 minutes (configs/train/world_default.yaml)
#   stem  its patch stem's CNN pretrained on segmentation (fourm-stem pretrain)
#   s2  2,000 steps of the mixture with the rgb -> caption task, peak lr 1e-3 (stages 2 and 3 in one)
#   s4  1,000 steps of caption -> bboxes alone (once, not twice)
#   s5  1,000 steps of the mixture with caption -> bboxes at 40%
# Resumable: every stage resumes from its last checkpoint; a finished stage is skipped.
#   bash experiments/round22_build.sh [RUN_DIR]      # default runs/r22_build
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=experiments/round22_stages.sh
. experiments/round22_stages.sh
R=${1:-runs/r22_build}
stage world_default "$R/s1" model.overrides.token_init_std=1.0 model.overrides.tie_embeddings=false \
  steps=5400 max_minutes=50
pretrain_stem "$R/s1" "$R/stem"
stage world_default_captions "$R/s2" model.init_from="$R/stem" optim.lr=1e-3
stage world_default_relations "$R/s4" model.init_from="$R/s2"
stage world_default_relations_mix "$R/s5" model.init_from="$R/s4"
bundle_and_eval "$R/s5" "$R"
