#!/usr/bin/env bash
# Retrieval experiments on top of the worked example (docs/experiments/retrieval.md): continue the fine-tuned model
# on the caption_embedding target, then teach it to read the rgb pixels (pixels -> caption and
# pixels -> caption_embedding), with the patch projection rescaled to the position table's scale.
# Needs runs/finetune_ce from scripts/finetune_caption_embedding.sh. About 2 h on 2 CPU cores (fp32).
# Steps whose outputs exist are skipped (FORCE=1 redoes them).
#   bash experiments/retrieval_focus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
TARGET_ONLY=experiments/configs/train/finetune_caption_embedding_target_only.yaml
PIXELS=experiments/configs/train/finetune_pixels_caption_embedding.yaml
todo() { [[ -n "${FORCE:-}" || ! -e "$1" ]]; }
[[ -e runs/finetune_ce/model ]] || { echo "error: no runs/finetune_ce/model (run scripts/finetune_caption_embedding.sh first)" >&2; exit 2; }

# 1. 400 + 1,000 steps on the caption_embedding target alone (caption / rgb / pixels -> it): 32 min
if todo runs/ce_focus/model; then
  python train.py --config "$TARGET_ONLY" --out runs/ce_focus --resume auto
fi
if todo runs/ce_focus_long/model; then
  python train.py --config "$TARGET_ONLY" --out runs/ce_focus_long --resume auto model.init_from=runs/ce_focus/model steps=1000
fi

# 2. 500 steps of pixels -> caption / caption_embedding with the projection as fine-tuned (0.02 init): 17 min
if todo runs/pixels_focus/checkpoints/step_00000500; then
  python train.py --config "$PIXELS" --out runs/pixels_focus --resume auto --stop-at 500
fi

# 3. the projection x4 (about the scale fourm now initialises it at), then 300 and 1,000 more steps: 45 min
if todo runs/pixels_rescaled; then
  python experiments/rescale_patch_projection.py runs/pixels_focus/checkpoints/step_00000500/model runs/pixels_rescaled --factor 4
fi
if todo runs/pixels_scaled/model; then
  python train.py --config "$PIXELS" --out runs/pixels_scaled --resume auto model.init_from=runs/pixels_rescaled \
    steps=300 checkpoint_every=150
fi
if todo runs/pixels_long/model; then
  python train.py --config "$PIXELS" --out runs/pixels_long --resume auto model.init_from=runs/pixels_scaled/model \
    steps=1000
fi

# 4. a bundle, and predicted retrieval (expected codes; direct and via the model's own caption)
fourm-bundle runs/pixels_long/model runs/pixels_long/bundle --base models/world-default \
  --add-modality configs/modalities/extra/caption_embedding.yaml --add-modality configs/modalities/extra/rgb_pixels.yaml \
  --tokenizer caption_embedding=runs/tok/caption_embedding
python bench/retrieval_world.py --bundle-predicted runs/pixels_long/bundle --methods predicted --decodings expected \
  --out runs/retrieval_pixels_long
