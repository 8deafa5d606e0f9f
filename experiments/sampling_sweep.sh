#!/usr/bin/env bash
# Generation defaults of the default bundle, chosen on val (docs/experiments/sampling_defaults.md):
# bench/eval_world.py on 64 world val scenes from index 1000 on (disjoint from the 256 scenes the README
# reports), caption -> rgb and caption -> bboxes -> rgb, over rgb guidance scales x bboxes temperatures
# (rgb keeps MaskGIT's temperature 1 annealed to 0); then rgb -> caption over caption temperatures.
# Prints one line per setting. About 8 min on 2 CPU cores with native bf16.
#   bash experiments/sampling_sweep.sh [BUNDLE]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
BUNDLE=${1:-models/world-default}
OUT=runs/sampling_sweep
run() {  # name, tasks, --set arguments...
  local name=$1 tasks=$2
  shift 2
  if [[ ! -e "$OUT/$name/eval_world.json" ]]; then
    python bench/eval_world.py --model "$BUNDLE" --num 64 --start 1000 --tasks "$tasks" --no-progress \
      --out "$OUT/$name" "$@" > /dev/null
  fi
}
for g in 1 2 3 5; do
  for bt in 1.0 0.7; do
    run "g${g}_bt${bt}" caption_to_rgb,caption_to_bboxes_to_rgb \
      --set "rgb.guidance_scale=$g" --set "bboxes.temperature=$bt"
  done
done
for ct in 1.0 0.7 0.4; do
  run "caption_t${ct}" rgb_to_caption --set "caption.temperature=$ct"
done
python - "$OUT" <<'PY'
import json, pathlib, sys
for run in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    r = json.loads((run / "eval_world.json").read_text())
    line = []
    for task, keys in (("caption_to_rgb", ("score",)),
                       ("caption_to_bboxes_to_rgb", ("score", "box_iou", "bbox_label_f1", "boxes_per_sample")),
                       ("rgb_to_caption", ("color_recall", "count_acc", "pair_f1"))):
        if task in r:
            line += [f"{task}/{k} {r[task][k]:.3f}" for k in keys if r[task].get(k) is not None]
    print(f"{run.name:<22}", "  ".join(line))
PY
