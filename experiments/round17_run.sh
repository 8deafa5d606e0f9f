#!/usr/bin/env bash
# Round 17 of issue 16 (docs/experiments/default_model.md): rgb codes and an rgb decoder that keep small shapes.
# 1. rgb tokenizers that also decode the scene's semseg from their codes (loss.aux): from scratch with aux
#    weights 0.5 and 2.0 (one thread each, 3,200 steps or 45 minutes; the 2.0 run was stopped at 1,000
#    steps, its colours lost), and the shipped tokenizer trained on with aux 0.5 (fourm-tokenizer train
#    --init, pruned codes re-enabled, 40 minutes), pruned as the build prunes.
# 2. Decoders on the shipped codes with a perceptual loss whose network segments the shapes
#    (fourm-tokenizer train-perceptual): weight 1 for 10 minutes, weight 3 for 15; the shipped one is the
#    build's own step (scripts/build_default_model.sh, rgb_decoder).
# 3. Shape accuracy through each (experiments/rgb_decoder_shapes.py) and the shipped model's generated
#    tokens decoded by each decoder (experiments/decoder_on_generated.py).
# 4. The shipped model moved onto the trained-on codes: the 24,000 model scenes re-tokenized, the code map
#    from the shipped codes, experiments/configs/train/r17_rgb_codes.yaml (1,500 steps), bundle, eval and
#    the quick start's prompt (seeds 0-5) and its mirror (0-3).
#   bash experiments/round17_run.sh   # resumes: a finished step is skipped
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
# shellcheck source=scripts/world_model_data.sh
. scripts/world_model_data.sh
SHIPPED=models/world-default/tokenizers/rgb
PERC=runs/tok/shape_perceptual.safetensors
[[ -e data/world ]] || fourm-data world --out data/world --num 6000 --seed 0
[[ -e data/world_model ]] || model_scenes
[[ -e data/world_model_ce ]] || model_embeddings
mkdir -p runs/tok runs/r17
aux() {  # WEIGHT STEPS
  [[ -e runs/tok/rgb_aux$1/last ]] || OMP_NUM_THREADS=1 fourm-tokenizer train --data data/world \
    --config experiments/configs/tokenizers/rgb_aux_semseg.yaml --out "runs/tok/rgb_aux$1" --steps "$2" \
    --max-minutes 45 loss.aux.weight="$1" > "runs/tok/rgb_aux$1.log" 2>&1
}
aux 0.5 3200 & a=$!
aux 2.0 1000 & b=$!
wait "$a"; wait "$b"
if [[ ! -e runs/tok/rgb_aux_cont/last ]]; then
  OMP_NUM_THREADS=1 fourm-tokenizer train --config "$SHIPPED/config.json" --init "$SHIPPED" --data data/world \
    --out runs/tok/rgb_aux_cont --steps 3000 --max-minutes 40 loss.aux.modality=semseg loss.aux.num_classes=8 \
    loss.aux.weight=0.5 "quantizer.disabled_codes=[]" train.lr=5e-4 train.warmup_steps=50 > runs/tok/rgb_aux_cont.log 2>&1
fi
[[ -e runs/tok/rgb_aux_cont_pruned ]] || fourm-tokenizer prune --tokenizer runs/tok/rgb_aux_cont/tokenizer \
  --data data/world --out runs/tok/rgb_aux_cont_pruned --distance 1.0
[[ -e $PERC ]] || OMP_NUM_THREADS=1 fourm-tokenizer train-perceptual --data data/world --out "$PERC" --minutes 7
decoder() {  # OUT WEIGHT MINUTES
  [[ -e runs/tok/$1/last ]] || OMP_NUM_THREADS=1 fourm-tokenizer finetune-decoder --tokenizer "$SHIPPED" \
    --data data/world --out "runs/tok/$1" --max-minutes "$3" --steps 2000 loss.perceptual_weight="$2" \
    loss.perceptual_weights="$PERC" train.lr=5e-4 train.warmup_steps=50 train.eval_every=400
}
decoder rgb_shipped_dec_perc 1.0 10 & a=$!
decoder rgb_dec_perc3 3.0 15 & b=$!
wait "$a"; wait "$b"
[[ -e runs/tok/rgb_decoder/last ]] || fourm-tokenizer finetune-decoder --tokenizer "$SHIPPED" --data data/world \
  --out runs/tok/rgb_decoder --max-minutes 30 --steps 950 loss.perceptual_weight=1.0 \
  loss.perceptual_weights="$PERC" train.lr=5e-4 train.warmup_steps=50
for n in 256 1024; do
  python experiments/rgb_decoder_shapes.py "$SHIPPED" runs/tok/rgb_aux0.5/tokenizer runs/tok/rgb_aux_cont/tokenizer \
    runs/tok/rgb_aux_cont_pruned runs/tok/rgb_shipped_dec_perc/last runs/tok/rgb_dec_perc3/last runs/tok/rgb_decoder/last \
    --num "$n" > "runs/r17/shapes_$n.txt"
done
python experiments/decoder_on_generated.py "$SHIPPED" runs/tok/rgb_shipped_dec_perc/last runs/tok/rgb_dec_perc3/last \
  runs/tok/rgb_decoder/last --model models/world-default --num 256 > runs/r17/decoders_on_generated.txt
STAGE=runs/r17/stage
if [[ ! -e $STAGE/tokenizers/rgb ]]; then
  mkdir -p "$STAGE/tokenizers"
  for mod in depth semseg edges text caption_embedding; do cp -r "models/world-default/tokenizers/$mod" "$STAGE/tokenizers/"; done
  fourm-pack runs/tok/rgb_aux_cont_pruned "$STAGE/tokenizers/rgb"
fi
[[ -e data/world_model_tokens ]] || model_tokens "$STAGE"
[[ -e runs/r17/code_map.json ]] || fourm-tokenizer code-map --old "$SHIPPED" --new "$STAGE/tokenizers/rgb" \
  --data data/world_model --out runs/r17/code_map.json
python train.py --config experiments/configs/train/r17_rgb_codes.yaml --out runs/r17_rgb_codes --resume auto
mkdir -p runs/default_stage && { [[ -e runs/default_stage/tokenizers ]] || cp -r models/world-default/tokenizers runs/default_stage/; }
name=r17_rgb_codes
bash scripts/bundle_world_model.sh "runs/$name/model" "runs/$name/bundle" "$STAGE/tokenizers/rgb"
python bench/eval_world.py --model "runs/$name/bundle" --num 256 --out "runs/$name/eval_world" --no-progress \
  > "runs/$name/eval_world.log" 2>&1
bash experiments/prompt_checks.sh "runs/$name/bundle" "runs/$name"
