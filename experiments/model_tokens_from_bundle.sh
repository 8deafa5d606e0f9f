#!/usr/bin/env bash
# The default model's token dataset (data/world_model_tokens) made with the tokenizers a bundle ships
# (models/world-default by default: the fp16 tokenizers that made the shipped model's tokens), so a
# FourM experiment on a fresh machine skips the build's 40-minute tokenizer stage. The same commands as
# scripts/build_default_model.sh stages 2-3 (scripts/world_model_data.sh).
# The tokenizers are also copied to runs/default_stage/tokenizers, where scripts/bundle_world_model.sh
# looks for them. About 10 min on 2 CPU cores. Stages whose output exists are skipped.
#   bash experiments/model_tokens_from_bundle.sh [BUNDLE]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
# shellcheck source=scripts/world_model_data.sh
. scripts/world_model_data.sh
BUNDLE=${1:-models/world-default}
if [[ ! -d $BUNDLE/tokenizers ]]; then
  echo "model_tokens_from_bundle.sh: $BUNDLE has no tokenizers/ folder (expected a bundle)" >&2; exit 2
fi
if [[ ! -e runs/default_stage/tokenizers ]]; then
  mkdir -p runs/default_stage && cp -r "$BUNDLE/tokenizers" runs/default_stage/tokenizers
fi
if [[ ! -e data/world_model ]]; then model_scenes; fi
if [[ ! -e data/world_model_ce ]]; then model_embeddings; fi
if [[ ! -e data/world_model_tokens ]]; then model_tokens "$BUNDLE"; fi
