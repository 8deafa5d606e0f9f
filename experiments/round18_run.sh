#!/usr/bin/env bash
# Round 18 of issue 16 (docs/experiments/default_model.md): why drawn objects miss their shapes.
# 1. Probes on the shipped bundle: does the caption's shape word change the rgb tokens' likelihood
#    (experiments/shape_binding.py), and how much of the shape survives rgb drawn from more and more of
#    the truth (experiments/drawing_ceiling.py); the semseg chains (bench/eval_world.py --tasks).
# 2. rgb guidance 2 / 3 / 5 / 8 on 256 other val scenes (from 1000).
# 3. The shipped model trained on for 2,000 steps two ways, side by side with one thread each, on the
#    shipped tokens (model_tokens with the shipped tokenizers -> data/world_model_tokens_old):
#      runs/r18_rgb_only   the drawing steps alone (experiments/configs/masking/caption_to_rgb_only.yaml)
#      runs/r18_mix_more   stage 5's mixture (configs/masking/mixture_chain_caption_boxes.yaml), peak lr 1e-4
#    each bundled with the shipped rgb tokenizer and probed as in 1 (the drawing tasks of the eval).
# 4. rgb decoders on the shipped codes: trained with wrong background codes (train.token_noise_ground,
#    0.5 of the background patches, 800 steps), and trained on with the shape perceptual loss for 1,500
#    more steps at weights 1 and 2; each scored on the shipped model's generated tokens
#    (experiments/decoder_on_generated.py) and through the tokenizer (experiments/rgb_decoder_shapes.py).
# 5. Round 17's model on its shape-carrying codes (runs/r17_rgb_codes, experiments/round17_run.sh) trained on
#    for 2,000 steps with the drawing entries raised (experiments/configs/train/r18_codes_draw.yaml), bundled
#    with those codes' perceptual decoder (runs/tok/rgb_aux_cont_dec) and evaluated.
# 6. How much one rgb code says about its shape (experiments/code_shape_information.py), shipped and round 17's codes.
#   bash experiments/round18_run.sh   # resumes: a finished step is skipped
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
SHIPPED=models/world-default/tokenizers/rgb
PERC=runs/tok/shape_perceptual.safetensors
EXTRA=configs/modalities/extra
mkdir -p runs/r18
python experiments/shape_binding.py --num 128 | tee runs/r18/shape_binding.txt
python experiments/drawing_ceiling.py --num 128 | tee runs/r18/drawing_ceiling.txt
python bench/eval_world.py --num 256 --tasks caption_to_semseg_to_rgb,caption_to_bboxes_to_semseg_to_rgb \
  --out runs/r18/semchain_shipped --no-progress
for g in 2 3 5 8; do
  [[ -e runs/r18/sweep_g$g/eval_world.json ]] || python bench/eval_world.py --num 256 --start 1000 \
    --tasks caption_to_rgb,caption_to_bboxes_to_rgb --set rgb.guidance_scale=$g --out runs/r18/sweep_g$g --no-progress
done
if [[ ! -e data/world_model_tokens_old ]]; then  # the shipped rgb codes (the build's model_tokens, another folder)
  fourm-data tokenize --data data/world_model_ce --out data/world_model_tokens_old --tokenizer-root runs/default_stage \
    --add-modality "$EXTRA/caption_embedding.yaml" --add-modality "$EXTRA/rgb_pixels.yaml" --add-modality "$EXTRA/box_map.yaml" \
    --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette,caption_embedding,rgb_pixels,box_map
fi
train() {  # NAME OVERRIDES...
  local name=$1; shift
  [[ -e runs/$name/model/model.safetensors ]] || OMP_NUM_THREADS=1 python train.py \
    --config experiments/configs/train/r18_rgb_only.yaml --out "runs/$name" --resume auto "$@" > "runs/$name.log" 2>&1
}
train r18_rgb_only & a=$!
train r18_mix_more masking.train=configs/masking/mixture_chain_caption_boxes.yaml optim.lr=1e-4 & b=$!
wait "$a"; wait "$b"
for name in r18_rgb_only r18_mix_more; do
  bash scripts/bundle_world_model.sh "runs/$name/model" "runs/$name/bundle" "$SHIPPED"
  python bench/eval_world.py --model "runs/$name/bundle" --num 256 --tasks caption_to_rgb,caption_to_bboxes_to_rgb \
    --out "runs/$name/eval_draw" --no-progress
  python experiments/shape_binding.py --model "runs/$name/bundle" --num 128 | tee "runs/$name/shape_binding.txt"
  python experiments/drawing_ceiling.py --model "runs/$name/bundle" --num 128 | tee "runs/$name/drawing_ceiling.txt"
done
decoder() {  # NAME STEPS OVERRIDES...
  local name=$1 steps=$2; shift 2
  [[ -e runs/tok/$name/last ]] || OMP_NUM_THREADS=1 fourm-tokenizer finetune-decoder --tokenizer "$SHIPPED" \
    --data data/world --out "runs/tok/$name" --steps "$steps" --max-minutes 25 loss.perceptual_weights="$PERC" \
    train.warmup_steps=50 "$@" > "runs/tok/$name.log" 2>&1
}
decoder rgb_dec_ground 800 loss.perceptual_weight=1.0 train.lr=5e-4 train.token_noise=0.5 train.token_noise_ground=semseg
decoder rgb_dec_more_w1 1500 loss.perceptual_weight=1.0 train.lr=3e-4 & a=$!
decoder rgb_dec_more_w2 1500 loss.perceptual_weight=2.0 train.lr=3e-4 & b=$!
wait "$a"; wait "$b"
DECODERS=("$SHIPPED" runs/tok/rgb_dec_ground/last runs/tok/rgb_dec_more_w1/last runs/tok/rgb_dec_more_w2/last)
python experiments/decoder_on_generated.py "${DECODERS[@]}" --num 256 --start 1000 --cache runs/r18/gen_1000.pt
python experiments/decoder_on_generated.py "${DECODERS[@]}" --num 256 --cache runs/r18/gen_0.pt
python experiments/rgb_decoder_shapes.py "${DECODERS[@]}" --num 256
[[ -e runs/tok/rgb_aux_cont_dec/last ]] || fourm-tokenizer finetune-decoder --tokenizer runs/tok/rgb_aux_cont_pruned \
  --data data/world --out runs/tok/rgb_aux_cont_dec --steps 950 loss.perceptual_weight=1.0 \
  loss.perceptual_weights="$PERC" train.lr=5e-4 train.warmup_steps=50   # the build's decoder step on these codes
[[ -e runs/r18_codes_draw/model/model.safetensors ]] || python train.py \
  --config experiments/configs/train/r18_codes_draw.yaml --out runs/r18_codes_draw --resume auto > runs/r18_codes_draw.log 2>&1
bash scripts/bundle_world_model.sh runs/r18_codes_draw/model runs/r18_codes_draw/bundle runs/tok/rgb_aux_cont_dec/last
python bench/eval_world.py --model runs/r18_codes_draw/bundle --num 256 --out runs/r18_codes_draw/eval_world --no-progress
for t in data/world_model_tokens_old data/world_model_tokens; do  # shipped codes, round 17's codes
  python experiments/code_shape_information.py --tokens "$t" | tee -a runs/r18/code_shape_information.txt
done
