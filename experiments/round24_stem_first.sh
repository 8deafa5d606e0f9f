#!/usr/bin/env bash
# A candidate for the 2.5 h build (issue 16; docs/experiments/default_model.md, round 23): the patch stem's CNN
# pretrained on the scenes' segmentation *before* stage 1 (fourm-stem pretrain on the untrained model: it
# needs only the scenes), so stage 1 learns to read segmentation while it learns to draw, then the shipped
# recipe's later stages shortened: rgb -> caption mixture, caption -> bboxes alone once, the mixture again.
# Unit token rows and untied heads (round 22; UNIT_ROWS=0: the shipped init). Resumable; TOKENS picks the token data (default the shipped);
# on 16 x 16 rgb tokens: TOKENS=data/world_model_tokens16 IMAGE_FRAME=8 RGB_TOKENIZER=runs/tok/rgb16_pruned.
# STAGE1_ONLY=1 stops after stage 1, bundled and scored in RUN_DIR/s1_scored (round 25's probe).
# MORE_MIX_STEPS=N then trains the last stage's mixture N more steps (peak lr 2e-4), scored in RUN_DIR/s5_scored
# (round 26: the relation stages' end scored in RUN_DIR, then 2,000 more steps).
#   bash experiments/round24_stem_first.sh [RUN_DIR] [STAGE1_STEPS]     # default runs/r24_stem_first 6000
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=experiments/round22_stages.sh
. experiments/round22_stages.sh
R=${1:-runs/r24_stem_first}
STEPS=${2:-6000}
# the untrained model (one step at lr 1e-12: its init as saved), then its stem pretrained
# UNIT_ROWS=0: the shipped init instead (token rows at std 0.02, tied heads), round 26's next question
INIT=(model.overrides.token_init_std=1.0 model.overrides.tie_embeddings=false)
if [[ "${UNIT_ROWS:-1}" == 0 ]]; then INIT=(); fi
stage world_default "$R/init" "${INIT[@]}" \
  steps=1 optim.warmup_steps=1 optim.lr=1e-12 optim.min_lr=0 max_minutes=null eval_batches=1 \
  ${IMAGE_FRAME:+model.overrides.image_frame=$IMAGE_FRAME}
pretrain_stem "$R/init" "$R/stem"
stage world_default "$R/s1" 'model.overrides={}' model.init_from="$R/stem" steps="$STEPS" max_minutes=null
if [[ -n "${STAGE1_ONLY:-}" ]]; then
  bundle_and_eval "$R/s1" "$R/s1_scored" ${RGB_TOKENIZER:+"$RGB_TOKENIZER"}
  exit 0
fi
stage world_default_captions "$R/s2" model.init_from="$R/s1" optim.lr=1.0e-3
stage world_default_relations "$R/s3" model.init_from="$R/s2"
stage world_default_relations_mix "$R/s4" model.init_from="$R/s3"
bundle_and_eval "$R/s4" "$R" ${RGB_TOKENIZER:+"$RGB_TOKENIZER"}
if [[ -n "${MORE_MIX_STEPS:-}" ]]; then
  stage world_default_relations_mix "$R/s5" model.init_from="$R/s4" steps="$MORE_MIX_STEPS" optim.lr=2.0e-4
  bundle_and_eval "$R/s5" "$R/s5_scored" ${RGB_TOKENIZER:+"$RGB_TOKENIZER"}
fi
