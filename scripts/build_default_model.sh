#!/usr/bin/env bash
# Rebuild the shipped default model (models/world-default) from scratch with the project's own
# commands: world data -> image tokenizers -> text tokenizer -> token dataset -> FourM -> fp16 pack.
# About 2.5 hours on 2 CPU cores (tokenizers ~80 min, FourM training ~60 min).
#   bash scripts/build_default_model.sh            # everything
#   SKIP_TOKENIZERS=1 bash scripts/build_default_model.sh   # reuse runs/tok/*/tokenizer
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
OUT=models/world-default
WORK=runs/default

# 1. image tokenizers, trained on their own world sample (seed 0), each with a time budget
if [[ -z "${SKIP_TOKENIZERS:-}" ]]; then
  fourm-data world --out data/world --num 6000 --seed 0
  for spec in "rgb 30" "depth 30" "semseg 12" "edges 10"; do
    set -- $spec
    fourm-tokenizer train --config "configs/tokenizers/$1.yaml" --data data/world --out "runs/tok/$1" --max-minutes "$2"
  done
fi
for mod in rgb depth semseg edges; do
  fourm-pack "runs/tok/$mod/tokenizer" "$OUT/tokenizers/$mod"
done

# 2. the model's data: fresh scenes (seed 1), a WordPiece text vocabulary, then tokens
fourm-data world --out data/world_model --num 24000 --seed 1 --val-fraction 0.05
fourm-tokenizer train-text --data data/world_model --out "$OUT/tokenizers/text" --vocab-size 1024
fourm-data tokenize --data data/world_model --out data/world_model_tokens --tokenizer-root "$OUT" \
  --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette

# 3. FourM on the tokens, then pack it next to its tokenizers
python train.py --config configs/train/world_default.yaml --out "$WORK" --resume auto
fourm-pack "$WORK/model" "$OUT/model"
