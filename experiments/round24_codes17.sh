#!/usr/bin/env bash
# Round 24 of issue 16 (docs/experiments/default_model.md): the shipped recipe's FourM stages exactly as shipped
# (tied heads, token rows at 0.02), from scratch on round 17's shape-carrying rgb codes (data/world_model_tokens,
# made by runs/tok/rgb_aux_cont_pruned; bundled with their perceptual decoder runs/tok/rgb_aux_cont_dec: shape
# ceiling 0.853 on the eval's scenes, against the shipped codes' 0.828), so the codes alone differ from the
# shipped model. Stage 1 runs the shipped stage 1's 7,567 steps on a steps-only schedule. Resumable.
#   bash experiments/round24_codes17.sh [RUN_DIR]     # default runs/r24_codes17
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS=data/world_model_tokens
# shellcheck source=experiments/round22_stages.sh
. experiments/round22_stages.sh
R=${1:-runs/r24_codes17}
stage world_default "$R/s1" steps=7567 max_minutes=null
later_stages "$R"
bundle_and_eval "$R/s5" "$R" runs/tok/rgb_aux_cont_dec/last
