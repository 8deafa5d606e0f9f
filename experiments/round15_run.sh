#!/usr/bin/env bash
# Round 15 of issue 16 (docs/experiments/default_model.md): teach the model to read the caption's
# relation words from boxes. The shipped model (round 12, runs/r12_caption) continued for 2,000 steps of
# stage 3 on experiments/configs/masking/mixture_chain_caption_rev.yaml (stage 3's mixture plus a
# boxes -> caption entry), two ways side by side with one thread each:
#   runs/r15_rev      from round 12 as it is
#   runs/r15_rev_ord  from round 12 with its encoder's box coordinate rows replaced by the decoder's
#                     ordered ones (experiments/order_box_embeddings.py)
# Control: round 13's runs/r13_more (the same 2,000 steps on stage 3's mixture).
#   bash experiments/round15_run.sh   # resumes; a finished run is only bundled and evaluated
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
MIX=experiments/configs/masking/mixture_chain_caption_rev.yaml
if [[ ! -e runs/r15_ordered_init/model/model.safetensors ]]; then
  python experiments/order_box_embeddings.py --model runs/r12_caption/model --out runs/r15_ordered_init/model
fi
train() {  # NAME INIT
  if [[ ! -e runs/$1/model/model.safetensors ]]; then
    OMP_NUM_THREADS=1 python train.py --config configs/train/world_default_captions.yaml --out "runs/$1" \
      --resume auto model.init_from="$2" masking.train=$MIX > "runs/$1.log" 2>&1
  fi
}
train r15_rev runs/r12_caption & plain=$!
train r15_rev_ord runs/r15_ordered_init/model & ordered=$!
wait "$plain"
wait "$ordered"
P="a small red circle to the left of a large blue square"
R="a large blue square to the right of a small red circle"
for name in r15_rev r15_rev_ord; do
  bash scripts/bundle_world_model.sh "runs/$name/model" "runs/$name/bundle"
  python experiments/relation_binding.py --model "runs/$name/bundle" > "runs/$name/relation_binding.txt"
  for s in 0 1 2 3 4 5; do
    python generate.py --model "runs/$name/bundle" --cond caption="$P" --target bboxes rgb --num-samples 4 \
      --seed "$s" --out "runs/$name/qs_$s" --no-progress > /dev/null 2>&1
    python experiments/check_generation.py "runs/$name/qs_$s" > "runs/$name/qs_$s.txt"
  done
  for s in 0 1 2 3; do
    python generate.py --model "runs/$name/bundle" --cond caption="$R" --target bboxes rgb --num-samples 4 \
      --seed "$s" --out "runs/$name/rev_$s" --no-progress > /dev/null 2>&1
    python experiments/check_generation.py "runs/$name/rev_$s" > "runs/$name/rev_$s.txt"
  done
  python bench/eval_world.py --model "runs/$name/bundle" --num 256 --out "runs/$name/eval_world" --no-progress \
    > "runs/$name/eval_world.log" 2>&1
done
