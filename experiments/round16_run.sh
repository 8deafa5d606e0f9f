#!/usr/bin/env bash
# Round 16 of issue 16 (docs/experiments/default_model.md): can focused steps teach the relations?
# Round 12 (runs/r12_caption) continued for 1,000 steps (peak lr 2e-4) two ways, side by side with one
# thread each, then two continuations of the caption -> bboxes arm:
#   runs/p16_c2b_only       caption -> bboxes alone (experiments/configs/masking/caption_to_bboxes_only.yaml)
#   runs/p16_c2b_mix        stage 3's mixture with caption -> bboxes at weight 0.40
#   runs/p16_c2b_only2      p16_c2b_only + 1,000 more steps of caption -> bboxes alone (peak lr 2e-4)
#   runs/p16_only_then_mix  p16_c2b_only + 1,000 steps of stage 3's mixture (peak lr 1e-4): kept or forgotten?
#   runs/p16_only2_then_mix40  p16_c2b_only2 + 1,000 steps of the 0.40 mixture (peak lr 1e-4): shipped
# Each model is bundled and probed (relation_sampling.py, relation_binding.py); the last three are also
# evaluated (bench/eval_world.py, the quick start's prompt and its mirror).
#   bash experiments/round16_run.sh   # resumes; a finished run is only bundled and evaluated
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
C2B=experiments/configs/masking/caption_to_bboxes_only.yaml
train() {  # NAME INIT MASKING LR
  if [[ ! -e runs/$1/model/model.safetensors ]]; then
    OMP_NUM_THREADS=1 python train.py --config configs/train/world_default_captions.yaml --out "runs/$1" \
      --resume auto model.init_from="$2" masking.train="$3" steps=1000 optim.lr="$4" optim.warmup_steps=50 \
      eval_every=500 checkpoint_every=250 keep_checkpoints=4 > "runs/$1.log" 2>&1
  fi
}
train p16_c2b_only runs/r12_caption "$C2B" 2e-4 & a=$!
train p16_c2b_mix runs/r12_caption experiments/configs/masking/mixture_chain_caption_c2b.yaml 2e-4 & b=$!
wait "$a"; wait "$b"
train p16_c2b_only2 runs/p16_c2b_only "$C2B" 2e-4 & a=$!
train p16_only_then_mix runs/p16_c2b_only configs/masking/mixture_chain_caption.yaml 1e-4 & b=$!
wait "$a"; wait "$b"
train p16_only2_then_mix40 runs/p16_c2b_only2 experiments/configs/masking/mixture_chain_caption_c2b.yaml 1e-4
for name in p16_c2b_only p16_c2b_mix p16_c2b_only2 p16_only_then_mix p16_only2_then_mix40; do
  bash scripts/bundle_world_model.sh "runs/$name/model" "runs/$name/bundle"
  python experiments/relation_sampling.py --model "runs/$name/bundle" > "runs/$name/relation_sampling.txt"
  python experiments/relation_binding.py --model "runs/$name/bundle" > "runs/$name/relation_binding.txt"
done
for name in p16_c2b_only2 p16_only_then_mix p16_only2_then_mix40; do
  bash experiments/prompt_checks.sh "runs/$name/bundle" "runs/$name"
  python bench/eval_world.py --model "runs/$name/bundle" --num 256 --out "runs/$name/eval_world" --no-progress \
    > "runs/$name/eval_world.log" 2>&1
done
