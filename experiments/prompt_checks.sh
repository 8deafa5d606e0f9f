#!/usr/bin/env bash
# The quick start's prompt (seeds 0-5) and its mirror (seeds 0-3) drawn by a bundle (boxes, then rgb;
# 4 samples each) and scored by experiments/check_generation.py: OUT/qs_S[.txt] and OUT/rev_S[.txt].
# Used by the round run scripts (experiments/round16_run.sh, round17_run.sh).
#   bash experiments/prompt_checks.sh BUNDLE OUT
set -euo pipefail
BUNDLE=$1 OUT=$2
P="a small red circle to the left of a large blue square"
R="a large blue square to the right of a small red circle"
draw() {  # NAME CAPTION SEED
  python generate.py --model "$BUNDLE" --cond caption="$2" --target bboxes rgb --num-samples 4 \
    --seed "$3" --out "$OUT/$1_$3" --no-progress --overwrite > /dev/null 2>&1
  python experiments/check_generation.py "$OUT/$1_$3" > "$OUT/$1_$3.txt"
}
for s in 0 1 2 3 4 5; do draw qs "$P" "$s"; done
for s in 0 1 2 3; do draw rev "$R" "$s"; done
