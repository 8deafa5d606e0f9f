#!/usr/bin/env bash
# VQ-VAE-2 at the single-level token count, at EQUAL STEPS (docs/experiments/vqvae2.md, 2026-12-05 b):
#   conv      configs/tokenizers/rgb.yaml channel_mult=[1,2,4,6]   8x8            = 64 tokens, 1024 codes: 640 bits
#   vq2_68    configs/tokenizers/rgb_vqvae2_68.yaml                 2x2 + 8x8      = 68 tokens, 1024 codes: 680 bits
#   vq2_68b   rgb_vqvae2_68.yaml quantizer.codebook_size=684         2x2 + 8x8      = 68 tokens,  684 codes: 640 bits
# Each run: the same --steps (the cosine schedule follows the steps while the run keeps above
# STEPS / MAX_MINUTES steps a minute), --max-minutes as a safety stop (<= 10 min), one CPU thread,
# one run at a time; then `fourm-tokenizer eval --split val` (300 held-out images).
#   vq2_80    configs/tokenizers/rgb_vqvae2.yaml                    4x4 + 8x8      = 80 tokens, 1024 codes: 800 bits
#   STEPS=400 bash experiments/vqvae2_same_tokens.sh      # RUNS="conv vq2_68 vq2_68b" (default) picks runs
#   SEED=1 OUT=/tmp/vq2_same_s1 bash experiments/vqvae2_same_tokens.sh   # a repeat with train.seed=1
# summary.json in $OUT gains (or replaces) one entry per run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
STEPS=${STEPS:-400}
MAX_MINUTES=${MAX_MINUTES:-9.5}
DATA=${DATA:-/tmp/vq2_world}
OUT=${OUT:-/tmp/vq2_same}
RUNS=${RUNS:-conv vq2_68 vq2_68b}
SEED=${SEED:-0}
START=$(date +%s)
mkdir -p "$OUT"
[[ -e $DATA ]] || fourm-data world --out "$DATA" --num 3000 --seed 0 --workers 0

train() {  # name config [overrides...]
  local name=$1 config=$2
  shift 2
  echo "$(date -u +%H:%M:%S) train $name"
  fourm-tokenizer train --config "$config" --data "$DATA" --out "$OUT/$name" --overwrite \
    --steps "$STEPS" --max-minutes "$MAX_MINUTES" "train.seed=$SEED" "$@" >"$OUT/$name.train.log" 2>&1
  fourm-tokenizer eval --tokenizer "$OUT/$name/tokenizer" --data "$DATA" --split val \
    >"$OUT/$name.eval.json" 2>"$OUT/$name.eval.log"
}
for run in $RUNS; do
  case $run in
    conv) train conv configs/tokenizers/rgb.yaml "channel_mult=[1,2,4,6]" ;;
    vq2_68) train vq2_68 configs/tokenizers/rgb_vqvae2_68.yaml ;;
    vq2_68b) train vq2_68b configs/tokenizers/rgb_vqvae2_68.yaml quantizer.codebook_size=684 ;;
    vq2_80) train vq2_80 configs/tokenizers/rgb_vqvae2.yaml ;;
    *) echo "unknown run '$run' (known: conv vq2_68 vq2_68b vq2_80)" >&2; exit 2 ;;
  esac
done

# summary: tokens, bits per image, steps, minutes, held-out metrics (the eval's JSON line)
python - "$OUT" $RUNS <<'PY'
import json, math, sys
from pathlib import Path

from tokenizers_zoo.image import ImageTokenizer

out = Path(sys.argv[1])
rows = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
for name in sys.argv[2:]:
    tok = ImageTokenizer.from_pretrained(out / name / "tokenizer")
    run = json.loads((out / name / "metrics.json").read_text())
    ev = json.loads((out / f"{name}.eval.json").read_text().strip().splitlines()[-1])
    rows[name] = {"params": sum(p.numel() for p in tok.parameters()), "tokens": tok.num_tokens,
                  "vocab": tok.vocab_size, "bits": round(tok.num_tokens * math.log2(tok.vocab_size), 1),
                  "steps": run["steps"], "minutes": round(run["minutes"], 2), "seed": run["config"]["train"]["seed"],
                  **ev}
print(json.dumps(rows, indent=1))
(out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
PY
echo "done in $(( $(date +%s) - START )) s"
