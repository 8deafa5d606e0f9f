#!/usr/bin/env bash
# Round 12 of issue 16 (docs/experiments/default_model.md): the round-11 model (runs/r11_ft,
# experiments/stem_pretrain_run.sh r11) continued for 2,000 more steps as the build's stage 3
# (configs/train/world_default_captions.yaml, started from runs/r11_ft) three ways:
#   runs/r12_caption    with the image -> whole caption entry (configs/masking/mixture_chain_caption.yaml;
#                       shipped, and stage 3 of scripts/build_default_model.sh)
#   runs/r12_control    with the shipped mixture (does the entry help, or only the extra steps?)
#   runs/r12_caption_b  the entry's weight taken from the pixel entries instead
#                       (experiments/configs/masking/mixture_chain_caption_b.yaml)
# Each run is bundled and evaluated as the shipped one. About 35 min of training per run on 2 CPU cores
# without AMX.
#   bash experiments/round12_run.sh   # resumes; a finished run is only bundled and evaluated
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
run() {  # NAME [config overrides]
  local name=$1
  shift
  if [[ ! -e runs/$name/model/model.safetensors ]]; then
    python train.py --config configs/train/world_default_captions.yaml --out "runs/$name" --resume auto \
      model.init_from=runs/r11_ft "$@"
  fi
  bash scripts/bundle_world_model.sh "runs/$name/model" "runs/$name/bundle"
  python bench/eval_world.py --model "runs/$name/bundle" --num 256 --out "runs/$name/eval_world"
}
run r12_caption
run r12_control masking.train=configs/masking/mixture_chain_boxmap.yaml
run r12_caption_b masking.train=experiments/configs/masking/mixture_chain_caption_b.yaml
