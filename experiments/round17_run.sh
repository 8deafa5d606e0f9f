#!/usr/bin/env bash
# Round 17 of issue 16 (docs/experiments/default_model.md): rgb codes that keep small shapes.
# 1. Two rgb tokenizers that also decode the scene's semseg from their codes (loss.aux, weights 0.5 and
#    2.0), each in the build's rgb lane (one thread, 3,200 steps or 45 minutes), pruned as the build prunes;
#    shape accuracy through each (experiments/rgb_decoder_shapes.py) beside the shipped one.
# 2. The chosen one packed (fp16), the model's 24,000 scenes re-tokenized with it, the code map from the
#    shipped rgb codes to the new ones, and the shipped model moved onto the new codes
#    (experiments/configs/train/r17_rgb_codes.yaml: rows from the code map, 2,000 steps of stage 5's mixture).
# 3. Bundle, eval (bench/eval_world.py), the quick start's prompt (seeds 0-5) and its mirror (0-3).
#   bash experiments/round17_run.sh [AUX_WEIGHT]   # resumes; default 0.5
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
# shellcheck source=scripts/world_model_data.sh
. scripts/world_model_data.sh
W=${1:-0.5}
[[ -e data/world ]] || fourm-data world --out data/world --num 6000 --seed 0
[[ -e data/world_model ]] || model_scenes
[[ -e data/world_model_ce ]] || model_embeddings
tok() {  # WEIGHT
  if [[ ! -e runs/tok/rgb_aux$1/last ]]; then
    OMP_NUM_THREADS=1 fourm-tokenizer train --config experiments/configs/tokenizers/rgb_aux_semseg.yaml --data data/world \
      --out "runs/tok/rgb_aux$1" --steps 3200 --max-minutes 45 loss.aux.weight="$1" > "runs/tok/rgb_aux$1.log" 2>&1
  fi
  if [[ ! -e runs/tok/rgb_aux$1_pruned ]]; then
    fourm-tokenizer prune --tokenizer "runs/tok/rgb_aux$1/tokenizer" --data data/world --out "runs/tok/rgb_aux$1_pruned" \
      --distance 1.0 > "runs/tok/rgb_aux$1_pruned.log" 2>&1
  fi
}
mkdir -p runs/tok runs/r17
tok 0.5 & a=$!
tok 2.0 & b=$!
wait "$a"; wait "$b"
SHIPPED=models/world-default/tokenizers/rgb
python experiments/rgb_decoder_shapes.py "$SHIPPED" runs/tok/rgb_aux0.5/tokenizer runs/tok/rgb_aux0.5_pruned \
  runs/tok/rgb_aux2.0/tokenizer runs/tok/rgb_aux2.0_pruned > runs/r17/shapes.txt
STAGE=runs/r17/stage
if [[ ! -e $STAGE/tokenizers/rgb ]]; then
  mkdir -p "$STAGE/tokenizers"
  for mod in depth semseg edges text caption_embedding; do cp -r "models/world-default/tokenizers/$mod" "$STAGE/tokenizers/"; done
  fourm-pack "runs/tok/rgb_aux${W}_pruned" "$STAGE/tokenizers/rgb"
fi
[[ -e data/world_model_tokens ]] || model_tokens "$STAGE"
[[ -e runs/r17/code_map.json ]] || fourm-tokenizer code-map --old "$SHIPPED" --new "$STAGE/tokenizers/rgb" \
  --data data/world_model --out runs/r17/code_map.json
python train.py --config experiments/configs/train/r17_rgb_codes.yaml --out runs/r17_rgb_codes --resume auto
mkdir -p runs/default_stage && [[ -e runs/default_stage/tokenizers ]] || cp -r models/world-default/tokenizers runs/default_stage/
bash scripts/bundle_world_model.sh runs/r17_rgb_codes/model runs/r17_rgb_codes/bundle "$STAGE/tokenizers/rgb"
name=r17_rgb_codes
P="a small red circle to the left of a large blue square"
R="a large blue square to the right of a small red circle"
python bench/eval_world.py --model "runs/$name/bundle" --num 256 --out "runs/$name/eval_world" --no-progress \
  > "runs/$name/eval_world.log" 2>&1
for s in 0 1 2 3 4 5; do
  python generate.py --model "runs/$name/bundle" --cond caption="$P" --target bboxes rgb --num-samples 4 \
    --seed "$s" --out "runs/$name/qs_$s" --no-progress --overwrite > /dev/null 2>&1
  python experiments/check_generation.py "runs/$name/qs_$s" > "runs/$name/qs_$s.txt"
done
for s in 0 1 2 3; do
  python generate.py --model "runs/$name/bundle" --cond caption="$R" --target bboxes rgb --num-samples 4 \
    --seed "$s" --out "runs/$name/rev_$s" --no-progress --overwrite > /dev/null 2>&1
  python experiments/check_generation.py "runs/$name/rev_$s" > "runs/$name/rev_$s.txt"
done
