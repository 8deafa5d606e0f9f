#!/usr/bin/env bash
# Rebuild the shipped default model (models/world-default) from scratch with the project's own commands:
# world data -> image tokenizers -> text vocabulary, caption embeddings and their vector tokenizer ->
# token dataset -> FourM (reads rgb as pixel patches, predicts rgb tokens and every other modality,
# caption_embedding included) -> fp16 bundle with its generation defaults -> evaluation.
# About 4 h 15 min on 2 CPU cores with AMX: tokenizers 40 min (two lanes of one thread), the rgb decoder
# trained on with a shape-segmenting perceptual loss (about 17 min, one thread, beside stage 2), data
# and tokens 15 min, FourM 80 min (a wall-time cap: configs/train/world_default.yaml's max_minutes), its patch stem's
# CNN pretrained on segmentation (fourm-stem pretrain, 8 min), then 4,000 more steps (about 40 min),
# 2,000 more with the rgb -> caption task (about 20 min), 2,000 of caption -> bboxes alone (about 20
# min) and 1,000 of the mixture again (about 10 min), evaluation 5 min. With AVX512-BF16 but no AMX,
# FourM trains about 1.7x slower (1.05 vs 1.8 steps/s): stage 1 does fewer steps in its 80 minutes and
# stages 2, 3, 4 and 5 take about 64, 35, 33 and 17 min. In fp32
# (AVX2-only CPUs) the FourM run does about 4x fewer steps in its 80 minutes: raise it there
# (FOURM_TRAIN_OVERRIDES="max_minutes=300" bash scripts/build_default_model.sh).
# Every stage whose output exists is skipped, and FourM training, tokenizer training and stem
# pretraining resume from their last saved state, so an interrupted build continues where it stopped
# (FORCE=1 redoes every stage).
#   bash scripts/build_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
# shellcheck source=scripts/world_model_data.sh
. scripts/world_model_data.sh   # model_scenes, model_embeddings, model_tokens
OUT=models/world-default
WORK=runs/default                 # the FourM run, stage 1
STEM=runs/default_stem            # stage 1's model with a pretrained conv_image patch stem
MORE=runs/default_continued       # stage 2: 4,000 more steps
CAPS=runs/default_captions        # stage 3: 2,000 more steps with the rgb -> caption task
BOXES=runs/default_relations      # stage 4: 1,000 steps of caption -> bboxes alone
BOXES2=runs/default_relations_2   # stage 4 again: 1,000 more
LAST=runs/default_relations_mix   # stage 5: 1,000 steps of stage 3's mixture with caption -> bboxes at 40%
STAGE=runs/default_stage          # the tokenizers, fp16 exactly as they ship, that made the tokens
TOK=$STAGE/tokenizers
todo() { [[ -n "${FORCE:-}" || ! -e "$1" ]]; }

# 1. image tokenizers on their own world sample (seed 0); one thread per lane, wall-time schedules
if todo data/world; then
  fourm-data world --out data/world --num 6000 --seed 0
fi
tokenizer() {  # name steps minutes
  if todo "runs/tok/$1/last"; then  # last/ is written when training ends (tokenizer/ at its first evaluation)
    OMP_NUM_THREADS=1 fourm-tokenizer train --config "configs/tokenizers/$1.yaml" --data data/world \
      --out "runs/tok/$1" --steps "$2" --max-minutes "$3"
  fi
}
tokenizer rgb 3200 40 & lane1=$!
{ tokenizer semseg 1100 14 && tokenizer edges 900 12 && tokenizer depth 1100 15; } & lane2=$!
wait "$lane1"
wait "$lane2"
# rgb: disable near-duplicate codes (restarts left copies of the ground's codes: unpredictable tokens)
if todo runs/tok/rgb_pruned; then
  fourm-tokenizer prune --tokenizer runs/tok/rgb/tokenizer --data data/world --out runs/tok/rgb_pruned --distance 1.0
fi
# rgb decoder (in the background, beside stage 2): trained on the frozen codes with a perceptual loss whose
# network segments the scenes' shapes, so small shapes are drawn apart; the tokens stay those of rgb_pruned
rgb_decoder() {
  if todo runs/tok/shape_perceptual.safetensors; then
    OMP_NUM_THREADS=1 fourm-tokenizer train-perceptual --data data/world --out runs/tok/shape_perceptual.safetensors \
      --minutes 15 --steps 1050 --overwrite
  fi
  if todo runs/tok/rgb_decoder/last; then
    OMP_NUM_THREADS=1 fourm-tokenizer finetune-decoder --tokenizer runs/tok/rgb_pruned --data data/world \
      --out runs/tok/rgb_decoder --max-minutes 30 --steps 950 loss.perceptual_weight=1.0 \
      loss.perceptual_weights=runs/tok/shape_perceptual.safetensors train.lr=5e-4 train.warmup_steps=50
  fi
}
rgb_decoder & decoder_lane=$!

# 2. the model's data: fresh scenes (seed 1), MiniLM caption embeddings (a vector column), the text
#    vocabulary and the caption_embedding vector tokenizer
if todo data/world_model; then model_scenes; fi
if todo data/world_model_ce; then model_embeddings; fi
if todo runs/tok/text/tokenizer.json; then
  fourm-tokenizer train-text --data data/world_model --out runs/tok/text --vocab-size 1024
fi
if todo runs/tok/caption_embedding; then
  fourm-tokenizer train-vector --data data/world_model_ce --key caption_embedding --out runs/tok/caption_embedding \
    --tokens 4 --codebook-size 256 --steps 1500
fi

# 3. tokens of every modality, made with the fp16 tokenizers that ship (rgb: the pruned tokenizer's
#    encoder and codes, with the decoder of runs/tok/rgb_decoder)
wait "$decoder_lane"
if todo "$TOK/rgb"; then fourm-pack runs/tok/rgb_decoder/last "$TOK/rgb"; fi
for mod in depth semseg edges; do
  if todo "$TOK/$mod"; then fourm-pack "runs/tok/$mod/tokenizer" "$TOK/$mod"; fi
done
for mod in text caption_embedding; do
  if todo "$TOK/$mod"; then mkdir -p "$TOK" && cp -r "runs/tok/$mod" "$TOK/$mod"; fi
done
if todo data/world_model_tokens; then model_tokens "$STAGE"; fi

# 4. FourM, stage 1 (resumes from its last checkpoint); its linear patch stem becomes a conv_image stem
#    whose CNN path is pretrained on the scenes' segmentation (the model starts computing what it did);
#    then stage 2: 4,000 more steps (configs/train/world_default_continued.yaml, init_from runs/default_stem)
#    and stage 3: 2,000 more with the rgb -> caption task (configs/train/world_default_captions.yaml)
#    and stage 4: caption -> bboxes alone, twice 1,000 steps (configs/train/world_default_relations.yaml),
#    then stage 5: 1,000 steps of the mixture with caption -> bboxes at 40% (world_default_relations_mix.yaml)
# shellcheck disable=SC2086
python train.py --config configs/train/world_default.yaml --out "$WORK" --resume auto ${FOURM_TRAIN_OVERRIDES:-}
if todo "$STEM/stem_pretrain.json"; then
  fourm-stem pretrain --model "$WORK/model" --data data/world_model --out "$STEM"
fi
python train.py --config configs/train/world_default_continued.yaml --out "$MORE" --resume auto
python train.py --config configs/train/world_default_captions.yaml --out "$CAPS" --resume auto
# stage 4: the caption -> bboxes task alone, 2 x 1,000 steps (configs/train/world_default_relations.yaml):
# where the boxes learn the caption's relations
python train.py --config configs/train/world_default_relations.yaml --out "$BOXES" --resume auto
python train.py --config configs/train/world_default_relations.yaml --out "$BOXES2" --resume auto \
  model.init_from="$BOXES"
# stage 5: back to the mixture (caption -> bboxes at 40%), which restores the image side and keeps the relations
python train.py --config configs/train/world_default_relations_mix.yaml --out "$LAST" --resume auto

# 5. the bundle (fp16 model, its tokenizers, registry, generation defaults), made beside the run, then
#    put in place of the shipped one (the old bundle is only the registry's base)
bash scripts/bundle_world_model.sh "$LAST/model" "$LAST/bundle"  # tokenizers from $TOK, base bundle $OUT
rm -rf "$OUT.previous" && mv "$OUT" "$OUT.previous" && cp -r "$LAST/bundle" "$OUT" && rm -rf "$OUT.previous"

# 6. the figures of the README's default-model table
python bench/eval_world.py --model "$OUT" --num 256 --out "$LAST/eval_world"
python bench/retrieval_world.py --bundle-predicted "$OUT" --methods predicted,pooled_finetuned \
  --decodings expected --out "$LAST/retrieval"
