#!/usr/bin/env bash
# Round 19 of issue 16 (docs/experiments/default_model.md): rgb tokens on a 16 x 16 grid. The tokenizer
# (experiments/configs/tokenizers/rgb16.yaml, one thread, a 35-minute wall-time schedule) and its pruned
# codes; shape accuracy through it; the model's data re-tokenized with it (every other modality with the
# shipped tokenizers of runs/default_stage); the shipped model moved onto it
# (experiments/configs/train/r19_rgb16.yaml, 60 minutes on two threads); its bundle and evaluation.
# Needs the build's data (data/world, data/world_model_ce) and runs/default_stage/tokenizers.
#   bash experiments/round19_run.sh
set -euo pipefail
. scripts/world_model_data.sh
TOK=runs/tok/rgb16
[[ -e $TOK/tokenizer ]] || OMP_NUM_THREADS=1 fourm-tokenizer train --config experiments/configs/tokenizers/rgb16.yaml \
  --data data/world --out $TOK --steps 3200 --max-minutes 35 > $TOK.log 2>&1
[[ -e ${TOK}_pruned ]] || fourm-tokenizer prune --tokenizer $TOK/tokenizer --data data/world --out ${TOK}_pruned --distance 1.0
python experiments/rgb_decoder_shapes.py runs/default_stage/tokenizers/rgb $TOK/tokenizer ${TOK}_pruned --num 256 | tee runs/r19_ceiling.txt

# the registry with rgb on 16 x 16 (every other modality as shipped), then the model's tokens
mkdir -p runs/r19/registry
cp configs/modalities/*.yaml runs/r19/registry/
cp experiments/configs/modalities/rgb16/rgb.yaml runs/r19/registry/rgb.yaml
extra=configs/modalities/extra
[[ -e data/world_model_tokens16 ]] || fourm-data tokenize --data data/world_model_ce --out data/world_model_tokens16 \
  --registry runs/r19/registry --tokenizer-root runs/default_stage --tokenizer rgb=${TOK}_pruned \
  --add-modality $extra/caption_embedding.yaml --add-modality $extra/rgb_pixels.yaml --add-modality $extra/box_map.yaml \
  --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette,caption_embedding,rgb_pixels,box_map

[[ -e runs/r19_rgb16/model/model.safetensors ]] || python train.py \
  --config experiments/configs/train/r19_rgb16.yaml --out runs/r19_rgb16 --resume auto > runs/r19_rgb16.log 2>&1
bash scripts/bundle_world_model.sh runs/r19_rgb16/model runs/r19_rgb16/bundle ${TOK}_pruned
python bench/eval_world.py --model runs/r19_rgb16/bundle --num 256 --out runs/r19_rgb16/eval_world --no-progress

# The run above was made before FourMConfig.image_frame existed: its 16 x 16 rgb tokens sat at integer positions
# 0-15 beside the 8 x 8 maps' 0-7 (with today's code its re-initialisation sets image_frame 8 from the start).
# Its model with its images in one 8 x 8 frame, trained on for 25 minutes:
[[ -e runs/r19_frame_init/model.safetensors ]] || python - <<'PY'
from fourm.model import FourM
old = FourM.from_pretrained("runs/r19_rgb16/model")
model = FourM(old.config.replace(image_frame=8))
model.load_state_dict(old.state_dict())
model.save_pretrained("runs/r19_frame_init")
PY
[[ -e runs/r19_frame/model/model.safetensors ]] || python train.py \
  --config experiments/configs/train/r19_rgb16_frame.yaml --out runs/r19_frame --resume auto > runs/r19_frame.log 2>&1
bash scripts/bundle_world_model.sh runs/r19_frame/model runs/r19_frame/bundle ${TOK}_pruned
python bench/eval_world.py --model runs/r19_frame/bundle --num 256 --out runs/r19_frame/eval_world --no-progress
# the same run trained on for 11 more minutes (lr 1e-4): does drawing keep gaining?
[[ -e runs/r19_frame_more/model/model.safetensors ]] || python train.py --config experiments/configs/train/r19_rgb16_frame.yaml \
  --out runs/r19_frame_more --init-from runs/r19_frame/model max_minutes=11 optim.lr=1e-4 > runs/r19_frame_more.log 2>&1
bash scripts/bundle_world_model.sh runs/r19_frame_more/model runs/r19_frame_more/bundle ${TOK}_pruned
python bench/eval_world.py --model runs/r19_frame_more/bundle --num 256 --tasks caption_to_rgb,caption_to_bboxes_to_rgb \
  --out runs/r19_frame_more/eval_world --no-progress
