#!/usr/bin/env bash
# Video experiment (docs/experiments/video.md): a small FourM on video_caption <-> video (320 tokens of the
# joint image-video tokenizer per 8-frame clip), 10 CPU-minutes, then losses, MaskGIT clips and pictures.
# Needs the clip dataset and the video tokenizer of experiments/video_tokenizer.sh.
set -euo pipefail
export OMP_NUM_THREADS=1
RAW=${RAW:-runs/video/world_video}
TOK=${TOK:-runs/video/tokenizer/tokenizer}
OUT=${OUT:-runs/video_fourm}
mkdir -p "$OUT"
[ -d "$OUT/tokens" ] || fourm-data tokenize --data "$RAW" --out "$OUT/tokens" --tokenizer-root models/world-default \
    --add-modality configs/modalities/extra/video.yaml --add-modality configs/modalities/extra/video_caption.yaml \
    --modalities video_caption,video --tokenizer video="$TOK"
python train.py --config configs/train/video_tiny.yaml --data "$OUT/tokens" --out "$OUT/train" --max-minutes 10
python experiments/video_fourm.py --run "$OUT/train" --tokens "$OUT/tokens" --raw "$RAW" --tokenizer "$TOK" --out "$OUT"
