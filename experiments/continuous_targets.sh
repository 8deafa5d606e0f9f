#!/usr/bin/env bash
# Continuous targets (docs/experiments/continuous_targets.md): the caption's MiniLM vector regressed
# directly (caption_vector), through the vector tokenizer's 4 tokens (caption_embedding) and by a
# diffusion head (caption_vector_dh), one small FourM trained from scratch with all three targets.
# Needs data/world_model_tokens, data/world_model_ce and runs/default_stage (scripts/build_default_model.sh).
# About 16 min on 2 CPU cores, one thread: data 1 min, training 12 min (wall-time cap), evaluation 3 min.
# Writes $RUN/eval.json (all routes) and $RUN/diffusion_steps.json (the diffusion route at 1..50 DDIM steps).
#   bash experiments/continuous_targets.sh            # everything under /tmp/ct
#   RUN=/tmp/ct/run_v bash experiments/continuous_targets.sh steps=577   # another run dir; train.py overrides
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS=1
WORK=/tmp/ct  # the train config reads $WORK/tokens
RUN=${RUN:-$WORK/run}
if [[ ! -e "$WORK/tokens" ]]; then
  python experiments/continuous_targets/build_tokens.py --tokens data/world_model_tokens --raw data/world_model_ce \
    --out "$WORK/tokens" --train 6000 --val 256
fi
python train.py --config experiments/configs/train/continuous_targets.yaml --out "$RUN" "$@"
python experiments/continuous_targets/evaluate.py --model "$RUN/model" --tokens "$WORK/tokens" \
  --tokenizer runs/default_stage/tokenizers/caption_embedding --num 256 --out "$RUN/eval.json"
python experiments/continuous_targets/diffusion_steps.py --model "$RUN/model" --tokens "$WORK/tokens" \
  --steps 1 5 10 20 50 --out "$RUN/diffusion_steps.json"
