# Round 22 of issue 16: what experiments/round22_build.sh and round22_full.sh share (sourced, from the repo root):
# the venv, the tokens (TOKENS, default the shipped ones), a resumable FourM stage, the stem step, the shipped recipe's
# stages after stage 1, the bundle and its evaluation.
# shellcheck shell=bash
# shellcheck disable=SC1091
. .venv/bin/activate
DATA=(data.datasets.0.path="${TOKENS:-data/world_model_tokens_old}")  # default: the shipped model's tokens
stage() {  # config out [overrides...]: train (resuming) unless its model is saved
  local config=$1 out=$2
  shift 2
  if [[ ! -e "$out/model/config.json" ]]; then
    python train.py --config "configs/train/$config.yaml" --out "$out" --resume auto "${DATA[@]}" "$@"
  fi
}
pretrain_stem() {  # model_run out: its patch stem's CNN pretrained on segmentation (fourm-stem pretrain)
  if [[ ! -e "$2/stem_pretrain.json" ]]; then
    fourm-stem pretrain --model "$1/model" --data data/world_model --out "$2"
  fi
}
later_stages() {  # run: the shipped recipe's stages after stage 1 (run/s1): the stem, stages 2, 3, 4 twice and 5
  pretrain_stem "$1/s1" "$1/stem"
  stage world_default_continued "$1/s2" model.init_from="$1/stem"
  stage world_default_captions "$1/s3" model.init_from="$1/s2"
  stage world_default_relations "$1/s4a" model.init_from="$1/s3"
  stage world_default_relations "$1/s4b" model.init_from="$1/s4a"
  stage world_default_relations_mix "$1/s5" model.init_from="$1/s4b"
}
bundle_and_eval() {  # model_run out [rgb_tokenizer]: the bundle (out/bundle) and bench/eval_world.py on it (out/eval), unless scored
  if [[ -e "$2/eval/eval_world.json" ]]; then return 0; fi
  bash scripts/bundle_world_model.sh "$1/model" "$2/bundle" ${3:+"$3"}
  python bench/eval_world.py --model "$2/bundle" --num 256 --out "$2/eval" --no-progress
}
