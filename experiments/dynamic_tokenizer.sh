#!/usr/bin/env bash
# Dynamic-length (LaVIT-style) rgb tokenizer vs a 16-token fixed grid on the procedural world, equal
# wall-clock training (docs/experiments/dynamic_tokenizer.md). One thread, about 12 minutes; both
# tokenizers at half width (16 conv channels, batch 16) so that 4 minutes are a few hundred steps.
#   bash experiments/dynamic_tokenizer.sh            [DATA=/tmp/lavit_world RUNS=/tmp/lavit_runs MINUTES=4]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
DATA=${DATA:-/tmp/lavit_world}
RUNS=${RUNS:-/tmp/lavit_runs}
MINUTES=${MINUTES:-4}
SMALL="width=16 train.batch_size=16 train.eval_every=100000 train.eval_samples=200"
mkdir -p "$RUNS"
[ -d "$DATA" ] || fourm-data world --out "$DATA" --num 3000 --seed 0 --workers 0
# only the final evaluation (on 200 val images), so both runs spend their minutes training
fourm-tokenizer train --config configs/tokenizers/rgb_dynamic.yaml --data "$DATA" --out "$RUNS/dynamic" \
    --max-minutes "$MINUTES" $SMALL dynamic.token_width=64
# rgb.yaml with 16x downsampling: a 4 x 4 grid = 16 tokens, the dynamic tokenizer's target (0.25 x 64)
fourm-tokenizer train --config configs/tokenizers/rgb.yaml --data "$DATA" --out "$RUNS/grid16" \
    --max-minutes "$MINUTES" $SMALL downsample=16 "channel_mult=[1,2,4,4,4]"
python experiments/dynamic_tokenizer_measure.py --data "$DATA" --dynamic "$RUNS/dynamic/tokenizer" \
    --grid "$RUNS/grid16/tokenizer" --num 200 --thresholds 0.3 --out "$RUNS/measure.json"
