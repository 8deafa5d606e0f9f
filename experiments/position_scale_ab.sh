#!/usr/bin/env bash
# A/B of FourMConfig.position_scale for the default recipe (docs/experiments/default_model.md): the
# same 500 steps of configs/train/world_default.yaml (same data, seed and batches) with the sin-cos
# position table at scale 1.0 (token rows start at std 0.02: norm 0.3 next to 11.3) and at 0.25;
# each run's last val.csv row holds the per-task losses. Needs scripts/build_default_model.sh's
# token dataset (data/world_model_tokens). About 5 min per run on 2 CPU cores with native bf16.
#   bash experiments/position_scale_ab.sh [SCALE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
for scale in "${@:-1.0 0.25}"; do
  for s in $scale; do
    out="runs/ab_position_scale/$s"
    if [[ ! -e "$out/model" ]]; then
      python train.py --config configs/train/world_default.yaml --out "$out" --resume auto \
        "model.overrides.position_scale=$s" steps=500 optim.warmup_steps=100 eval_every=500 checkpoint_every=250
    fi
  done
done
python - <<'PY'
import csv, pathlib
for run in sorted(pathlib.Path("runs/ab_position_scale").iterdir()):
    rows = list(csv.DictReader(open(run / "val.csv")))
    last = rows[-1]
    keys = [k for k in last if k.endswith("/loss") or k == "val_loss" or k == "loss"]
    print(run.name, {k: round(float(last[k]), 3) for k in keys if last[k]})
PY
