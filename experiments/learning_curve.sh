#!/usr/bin/env bash
# Round 7 of issue 16 (docs/experiments/default_model.md): how the image-reading figures grow with
# training steps. Every saved model of a run (DIR/step_N, e.g. copied from its checkpoints every 1,000
# steps) is bundled beside it with the run's tokenizers and scored by bench/eval_world.py on the
# image -> semseg / depth / caption tasks; one JSON line per step goes to DIR/curve.jsonl.
#   bash experiments/learning_curve.sh runs/r7/curve runs/r7/tokenizers/rgb [NUM_SCENES]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
DIR=$1 RGB=$2 NUM=${3:-128}
: > "$DIR/curve.jsonl.tmp"
for model in $(ls -d "$DIR"/step_* | sort -V); do
  [[ $model == *.bundle || $model == *.eval ]] && continue
  bash scripts/bundle_world_model.sh "$model" "$model.bundle" "$RGB" > /dev/null
  python bench/eval_world.py --model "$model.bundle" --num "$NUM" --no-progress \
    --tasks rgb_to_semseg,rgb_to_depth,rgb_to_caption --out "$model.eval" > /dev/null
  python - "$model" >> "$DIR/curve.jsonl.tmp" <<'PY'
import json, sys
d = json.load(open(sys.argv[1] + ".eval/eval_world.json"))
keys = {"semseg_miou": ("rgb_to_semseg", "miou"), "semseg_fg_iou": ("rgb_to_semseg", "fg_iou"),
        "semseg_shape_right": ("rgb_to_semseg", "fg_class_acc"), "depth_abs_rel": ("rgb_to_depth", "abs_rel"),
        "caption_count_acc": ("rgb_to_caption", "count_acc"), "caption_shape_recall": ("rgb_to_caption", "shape_recall")}
row = {"step": int(sys.argv[1].rsplit("_", 1)[1])}
row.update({k: round(d[a][b], 4) for k, (a, b) in keys.items()})
print(json.dumps(row))
PY
done
mv "$DIR/curve.jsonl.tmp" "$DIR/curve.jsonl"
cat "$DIR/curve.jsonl"
