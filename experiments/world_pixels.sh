#!/usr/bin/env bash
# Retrieval experiment (docs/experiments/retrieval.md): the default recipe trained from scratch with rgb read as
# pixel patches from the start (rgb_pixels) and the caption_embedding target, then 2,000 steps with that
# target in every sample; bundles of both, the old modalities' losses compared, and retrieval measured.
# About 80 min on 2 CPU cores with native bf16 (AVX512-BF16), data included; about 5 h in fp32.
# Steps whose outputs exist are skipped (FORCE=1 redoes them).
#   bash experiments/world_pixels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash experiments/caption_embedding_data.sh   # data/world_model_tokens_ce, runs/tok/caption_embedding (~10 min)
# shellcheck disable=SC1091
. .venv/bin/activate
todo() { [[ -n "${FORCE:-}" || ! -e "$1" ]]; }
bundle() {  # a bundle of run $1's model with the default tokenizers + the caption_embedding one
  fourm-bundle "$1/model" "$1/bundle" --base models/world-default \
    --add-modality configs/modalities/extra/caption_embedding.yaml \
    --add-modality configs/modalities/extra/rgb_pixels.yaml --tokenizer caption_embedding=runs/tok/caption_embedding
}

# 1. from scratch, 5,000 steps (49 min bf16)
if todo runs/world_pixels/model; then
  python train.py --config experiments/configs/train/world_pixels.yaml --resume auto
fi
# 2. 2,000 more steps, caption_embedding a target of every sample (18 min bf16)
if todo runs/world_pixels_embedding/model; then
  python train.py --config experiments/configs/train/world_pixels_embedding.yaml --resume auto
fi
bundle runs/world_pixels
bundle runs/world_pixels_embedding

# 3. every modality's val loss, start vs end of step 2; retrieval and image -> caption of both models
python bench/finetune_report.py --run runs/world_pixels_embedding --json runs/world_pixels_embedding/finetune_report.json
for run in world_pixels world_pixels_embedding; do
  python bench/retrieval_world.py --bundle-predicted "runs/$run/bundle" --methods predicted,pooled_finetuned \
    --decodings expected --out "runs/retrieval_$run"
  python bench/caption_from_image.py --bundle "runs/$run/bundle" --json "runs/$run/caption_from_image.json"
done
