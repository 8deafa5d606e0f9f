#!/usr/bin/env bash
# Continuous targets (docs/experiments/continuous_targets.md): the caption's MiniLM vector regressed
# directly (caption_vector), through the vector tokenizer's 4 tokens (caption_embedding) and by a
# diffusion head (caption_vector_dh), one small FourM trained from scratch with all three targets.
# Needs data/world_model_tokens, data/world_model_ce and runs/default_stage (scripts/build_default_model.sh).
# About 16 min on 2 CPU cores, one thread: data 1 min, training 12 min (wall-time cap), evaluation 2 min.
#   bash experiments/continuous_targets.sh            # everything under /tmp/ct
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS=1
WORK=/tmp/ct  # the train config reads $WORK/tokens
if [[ ! -e "$WORK/tokens" ]]; then
  python experiments/continuous_targets/build_tokens.py --tokens data/world_model_tokens --raw data/world_model_ce \
    --out "$WORK/tokens" --train 6000 --val 256
fi
python train.py --config experiments/configs/train/continuous_targets.yaml --out "$WORK/run"
python experiments/continuous_targets/evaluate.py --model "$WORK/run/model" --tokens "$WORK/tokens" \
  --tokenizer runs/default_stage/tokenizers/caption_embedding --num 256 --out "$WORK/eval.json"
