#!/usr/bin/env bash
# rgb guidance scales of a bundle scored on tuning scenes (world val 256-511, not the 0-255 that
# bench/eval_world.py reports by default): one eval_world run per scale, then a table.
#   bash experiments/guidance_sweep.sh BUNDLE OUT [SCALES] [TASKS]
#   e.g. bash experiments/guidance_sweep.sh runs/r22_build/bundle runs/r23_gs/build "2 3 5 8 12 16" caption_to_rgb
# SET adds one more sampling override to every run (a separate OUT for each), e.g. SET=rgb.steps=16.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
BUNDLE=$1 OUT=$2 SCALES=${3:-"3 5 8 12"} TASKS=${4:-caption_to_rgb,caption_to_bboxes_to_rgb}
for g in $SCALES; do
  if [[ ! -e "$OUT/g$g/eval_world.json" ]]; then
    python bench/eval_world.py --model "$BUNDLE" --num 256 --start 256 --tasks "$TASKS" \
      --set "rgb.guidance_scale=$g" ${SET:+--set "$SET"} --out "$OUT/g$g" --no-progress > /dev/null
  fi
done
python - "$OUT" $SCALES <<'PY'
import json, sys
out, scales = sys.argv[1], sys.argv[2:]
keys = [("caption_to_rgb", k) for k in ("score", "presence", "shape_acc", "relation_acc")]
keys += [("caption_to_bboxes_to_rgb", k) for k in ("score", "box_iou")]
print("guidance | " + " | ".join(f"{t.replace('caption_to_', 'c->')} {k}" for t, k in keys))
for g in scales:
    d = json.load(open(f"{out}/g{g}/eval_world.json"))
    print(g, "|", " | ".join(f"{d[t][k]:.3f}" if t in d else "-" for t, k in keys))
PY
