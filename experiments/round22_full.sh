#!/usr/bin/env bash
# Round 22 of issue 16 (docs/experiments/default_model.md): the shipped recipe's FourM stages at full length
# (scripts/build_default_model.sh, step 4) with token rows at unit std and untied heads, on the shipped tokens
# and tokenizers. Stage 1 runs the steps the shipped stage 1 did in its 80 minutes (7,567) on a steps-only
# schedule, so the run does not depend on what else the machine does. Resumable: every stage resumes from its
# last checkpoint; a finished stage is skipped. TOKENS picks the token data and RGB_TOKENIZER the bundle's rgb
# tokenizer (round 24: round 17's shape-carrying codes,
#   TOKENS=data/world_model_tokens RGB_TOKENIZER=runs/tok/rgb_aux_cont_dec/last bash experiments/round22_full.sh runs/r24_codes17).
#   bash experiments/round22_full.sh [RUN_DIR]      # default runs/r22_full
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=experiments/round22_stages.sh
. experiments/round22_stages.sh
R=${1:-runs/r22_full}
stage world_default "$R/s1" model.overrides.token_init_std=1.0 model.overrides.tie_embeddings=false \
  steps=7567 max_minutes=null
later_stages "$R"
bundle_and_eval "$R/s5" "$R" ${RGB_TOKENIZER:+"$RGB_TOKENIZER"}
