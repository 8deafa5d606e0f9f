#!/usr/bin/env bash
# Round 7 of issue 16 (docs/experiments/default_model.md): the default recipe with the 2,048-code rgb
# tokenizer of round 6 (experiments/configs/tokenizers/rgb_vq2048.yaml, 3,200 steps), its decoder
# fine-tuned on frozen codes (fourm-tokenizer finetune-decoder) and pruned as the build prunes the shipped
# one (fourm-tokenizer prune --distance 1.0). Everything else as the shipped round-3 run: same scenes,
# seed, batches, 7,567 steps. Tokens and registry live under runs/r7 (rgb vocabulary 2048); nothing in
# models/ or configs/ is touched. About 95 min on 2 CPU cores with native bf16.
#   bash experiments/rgb2048_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
R=runs/r7
EXTRA=configs/modalities/extra
mkdir -p "$R"
if [[ ! -e $R/registry ]]; then  # the registry with rgb's vocabulary at 2048
  cp -r configs/modalities "$R/registry.tmp"
  sed -i 's/^vocab_size: 1024/vocab_size: 2048/' "$R/registry.tmp/rgb.yaml"
  mv "$R/registry.tmp" "$R/registry"
fi
if [[ ! -e runs/tok/rgb_vq2048_dec_pruned ]]; then
  fourm-tokenizer prune --tokenizer runs/tok/rgb_vq2048_dec/tokenizer --data data/world \
    --out runs/tok/rgb_vq2048_dec_pruned --distance 1.0
fi
if [[ ! -e $R/tokenizers/rgb ]]; then fourm-pack runs/tok/rgb_vq2048_dec_pruned "$R/tokenizers/rgb"; fi
if [[ ! -e data/world_model_tokens_r7 ]]; then
  fourm-data tokenize --data data/world_model_ce --out data/world_model_tokens_r7 --registry "$R/registry" \
    --tokenizer-root runs/default_stage --tokenizer rgb="$R/tokenizers/rgb" \
    --add-modality "$EXTRA/caption_embedding.yaml" --add-modality "$EXTRA/rgb_pixels.yaml" \
    --add-modality "$EXTRA/box_map.yaml" \
    --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette,caption_embedding,rgb_pixels,box_map
fi
python train.py --config configs/train/world_default.yaml --out "$R/run" --resume auto \
  --data data/world_model_tokens_r7 steps=7567 max_minutes=110  # step-matched; the cap only guards
bash scripts/bundle_world_model.sh "$R/run/model" "$R/bundle" "$R/tokenizers/rgb"
python bench/eval_world.py --model "$R/bundle" --num 256 --out "$R/eval_world"
