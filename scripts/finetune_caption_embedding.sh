#!/usr/bin/env bash
# Worked example: add a new modality to the shipped default model by fine-tuning.
# caption -> 384-d all-MiniLM-L6-v2 sentence embedding (offline) -> 4 tokens of a vector tokenizer
# -> FourM fine-tuned from models/world-default/model with the new modality -> report.
# About 25 minutes on 2 CPU cores (embedding ~4 min, vector tokenizer <1 min, tokens ~4 min,
# fine-tuning ~12 min, report ~1 min). Steps whose outputs exist are skipped (FORCE=1 redoes them).
#   bash scripts/finetune_caption_embedding.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
BUNDLE=models/world-default
RAW=data/world_model            # the default model's raw data (24k samples, seed 1)
RAW_CE=data/world_model_ce      # + caption_embedding (a copy: the original stays as it is)
TOKENS=data/world_model_tokens_ce
RUN=runs/finetune_ce
EXTRA=configs/modalities/extra/caption_embedding.yaml
todo() { [[ -n "${FORCE:-}" || ! -e "$1" ]]; }

# 1. sentence embeddings of the captions, a new vector column (float32, unit norm)
if todo "$RAW_CE"; then
  fourm-data embed --data "$RAW" --source caption --name caption_embedding --out "$RAW_CE"
fi

# 2. the vector tokenizer: 4 codebooks x 256 codes (vocabulary 1024, as the modality YAML says)
if todo "$BUNDLE/tokenizers/caption_embedding"; then
  fourm-tokenizer train-vector --data "$RAW_CE" --key caption_embedding \
    --out "$BUNDLE/tokenizers/caption_embedding" --tokens 4 --codebook-size 256 --steps 1500
fi

# 3. tokens of the old modalities + the new one (the extra registry entry on top of the default registry)
if todo "$TOKENS"; then
  fourm-data tokenize --data "$RAW_CE" --out "$TOKENS" --tokenizer-root "$BUNDLE" --add-modality "$EXTRA" \
    --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette,caption_embedding
fi

# 4. fine-tune: old weights loaded bit-exact, new rows mean/std-matched; 200 steps with only the new
#    rows training, then everything (old weights at lr x 0.1)
if todo "$RUN/model"; then
  python train.py --config configs/train/finetune_caption_embedding.yaml --out "$RUN" --resume auto \
    --init-from "$BUNDLE/model" --add-modality "$EXTRA"
fi

# 5. report: old modalities original vs fine-tuned (ratio <= 1.05), new modality start -> end
python bench/finetune_report.py --run "$RUN" --json "$RUN/finetune_report.json"
