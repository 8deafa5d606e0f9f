#!/usr/bin/env bash
# Dynamic-length (LaVIT-style) rgb tokenizer vs a 16-token fixed grid on the procedural world, at EQUAL
# training steps (docs/experiments/dynamic_tokenizer.md). One thread; both tokenizers at half width
# (16 conv channels, batch 16). The dynamic run keeps every patch for KEEP_ALL steps, lowers its ratio
# target from 1 to 0.25 over RAMP steps, and learns its inference threshold (EMA of the 0.75 quantile
# of keep probabilities). Each run stops at STEPS or MINUTES; the grid then trains exactly as many
# steps as the dynamic run did.
#   bash experiments/dynamic_tokenizer.sh   [DATA=data/world RUNS=/tmp/dyn_runs STEPS=1800 KEEP_ALL=500 RAMP=500 MINUTES=12]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
DATA=${DATA:-data/world}
RUNS=${RUNS:-/tmp/dyn_runs}
STEPS=${STEPS:-1800}
KEEP_ALL=${KEEP_ALL:-500}
RAMP=${RAMP:-500}
MINUTES=${MINUTES:-12}
# only the final evaluation; restart codes unused for 25 steps in both (the first run's codebook collapsed)
SMALL="width=16 train.batch_size=16 train.eval_every=100000 train.eval_samples=300 quantizer.dead_code_steps=25"
mkdir -p "$RUNS"
[ -d "$DATA" ] || fourm-data world --out "$DATA" --num 3000 --seed 0 --workers 0
fourm-tokenizer train --config configs/tokenizers/rgb_dynamic.yaml --data "$DATA" --out "$RUNS/dynamic" \
    --steps "$STEPS" --max-minutes "$MINUTES" $SMALL dynamic.token_width=64 \
    dynamic.keep_all_steps="$KEEP_ALL" dynamic.ratio_ramp_steps="$RAMP" dynamic.threshold_mode=quantile
DONE=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['steps'])" "$RUNS/dynamic/metrics.json")
# rgb.yaml with 16x downsampling: a 4 x 4 grid = 16 tokens, the dynamic tokenizer's target (0.25 x 64)
fourm-tokenizer train --config configs/tokenizers/rgb.yaml --data "$DATA" --out "$RUNS/grid16" \
    --steps "$DONE" --max-minutes "$MINUTES" $SMALL downsample=16 "channel_mult=[1,2,4,4,4]"
python experiments/dynamic_tokenizer_measure.py --data "$DATA" --dynamic "$RUNS/dynamic/tokenizer" \
    --grid "$RUNS/grid16/tokenizer" --num 300 --thresholds 0.5 --out "$RUNS/measure.json"
