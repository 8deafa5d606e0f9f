#!/usr/bin/env bash
# The main job on a fresh machine: set up, then run the demo into ./outputs/quickstart.
# Today's demo builds a small procedural-world dataset and saves a picture of every modality.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
out=outputs/quickstart
fourm-data world --out "$out/world" --num 1000 --size 64 --seed 0
fourm-data show --data "$out/world" --split val --num 8 --out "$out/world_grid.png"
echo "[quickstart] dataset in $out/world, picture in $out/world_grid.png"
