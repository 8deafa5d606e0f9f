#!/usr/bin/env bash
# Round 28: rgb candidates reranked by log p(caption | the candidate's pixel patches), on the shipped
# bundle and the tuning scenes (world val 256-511). Each run is skipped when its eval_world.json exists.
#   bash experiments/round28_rerank_pixels.sh [OUT]      (default runs/r28)
# The control, candidates scored through their own rgb tokens (the reading before this round), needs
# the code before round 28 (git checkout 3ff8658 -- fourm/generation): K=4 gave 0.446 on val 256-383.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
OUT=${1:-runs/r28}
run() {  # NAME TASKS [--set ...]
  local name=$1 tasks=$2
  shift 2
  if [[ ! -e "$OUT/$name/eval_world.json" ]]; then
    python bench/eval_world.py --model models/world-default --num 256 --start 256 --tasks "$tasks" \
      "$@" --out "$OUT/$name" --no-progress > "$OUT/$name.log" 2>&1
  fi
}
mkdir -p "$OUT"
BOTH=caption_to_rgb,caption_to_bboxes_to_rgb
run k1 $BOTH --set rgb.candidates=1
run k4 $BOTH --set rgb.candidates=4 --set 'rgb.rerank_by=[caption]'
run k8 $BOTH --set rgb.candidates=8 --set 'rgb.rerank_by=[caption]'
run k4cb caption_to_bboxes_to_rgb --set rgb.candidates=4 --set 'rgb.rerank_by=[caption,bboxes]'
run k8g3 $BOTH --set rgb.candidates=8 --set rgb.guidance_scale=3
run k8s4 caption_to_rgb --set rgb.candidates=8 --set rgb.steps=4
run k16s4 caption_to_rgb --set rgb.candidates=16 --set rgb.steps=4
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

for run in sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "eval_world.json").is_file()):
    r = json.loads((run / "eval_world.json").read_text())
    cells = []
    for task in ("caption_to_rgb", "caption_to_bboxes_to_rgb"):
        t = r.get(task)
        if t:
            cells.append(f"{task} {t['score']:.3f} (presence {t['presence']:.3f}, shape {t['shape_acc']:.3f}, "
                         f"relation {t['relation_acc']:.3f})")
    print(f"{run.name}: " + " | ".join(cells))
PY
