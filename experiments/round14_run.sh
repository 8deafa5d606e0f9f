#!/usr/bin/env bash
# Round 14 of issue 16 (docs/experiments/default_model.md): do captions that name the objects left to
# right count better? The default model's data (24,000 scenes, seed 1) rendered again with the captions'
# object order changed (the boxes' order follows; images, templates and metadata stay the same),
# tokenized with the shipped bundle's tokenizers, then the shipped model of round 12 (runs/r12_caption)
# continued for 2,000 steps of stage 3 (configs/train/world_default_captions.yaml) on it. Its control is
# round 13's runs/r13_more (the same steps on the random-order data). Two variants:
#   ltr    experiments/configs/world/caption_left_to_right.yaml -> data/world_ltr*, runs/r14_ltr
#   mixed  experiments/configs/world/caption_mixed_order.yaml (half of the scenes) -> data/world_mixed*, runs/r14_mixed
#   bash experiments/round14_run.sh ltr|mixed   # stages whose output exists are skipped; training resumes
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
case ${1:-} in
  ltr) WORLD=experiments/configs/world/caption_left_to_right.yaml ;;
  mixed) WORLD=experiments/configs/world/caption_mixed_order.yaml ;;
  *) echo "usage: bash experiments/round14_run.sh ltr|mixed" >&2; exit 2 ;;
esac
DATA=data/world_$1 RUN=runs/r14_$1
extra=configs/modalities/extra
if [[ ! -e $DATA ]]; then
  fourm-data world --out "$DATA" --num 24000 --seed 1 --val-fraction 0.05 --config "$WORLD"
fi
if [[ ! -e ${DATA}_ce ]]; then
  fourm-data embed --data "$DATA" --source caption --name caption_embedding --out "${DATA}_ce"
fi
if [[ ! -e ${DATA}_tokens ]]; then
  fourm-data tokenize --data "${DATA}_ce" --out "${DATA}_tokens" --tokenizer-root models/world-default \
    --add-modality "$extra/caption_embedding.yaml" --add-modality "$extra/rgb_pixels.yaml" \
    --add-modality "$extra/box_map.yaml" \
    --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette,caption_embedding,rgb_pixels,box_map
fi
if [[ ! -e $RUN/model/model.safetensors ]]; then
  python train.py --config configs/train/world_default_captions.yaml --out "$RUN" --resume auto \
    model.init_from=runs/r12_caption "data.datasets=[{path: ${DATA}_tokens, weight: 1.0}]"
fi
bash scripts/bundle_world_model.sh "$RUN/model" "$RUN/bundle"
