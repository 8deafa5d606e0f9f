#!/usr/bin/env bash
# The main job on a fresh machine: set up, then chained any-to-any generation with the shipped
# default model (models/world-default): a caption in; boxes, RGB, depth, segmentation, edges out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
out=outputs/quickstart
python generate.py --cond caption="a small red circle to the left of a large blue square" \
    --target bboxes rgb depth semseg edges --num-samples 4 --seed 0 --out "$out" --overwrite
echo "[quickstart] pictures and sequences.json in $out (overview: $out/overview.png)"
