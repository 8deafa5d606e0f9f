#!/usr/bin/env bash
# Two-level VQ-VAE-2 rgb tokenizer (configs/tokenizers/rgb_vqvae2.yaml: 4x4 top + 8x8 bottom = 80
# tokens) against the single-level conv VQ tokenizer (configs/tokenizers/rgb.yaml, 8x8 = 64 tokens,
# channel_mult [1,2,4,6] so that both have about 3.6-3.9 M parameters) on 64x64 world images: the same
# wall-clock training time on one CPU thread each, then held-out (val) PSNR and codebook usage with
# `fourm-tokenizer eval`. Write-up: docs/experiments/vqvae2.md.
#   bash experiments/vqvae2_vs_vq.sh            # MINUTES per tokenizer (default 6), BUDGET_S for all (870)
# The data step is skipped when $DATA exists; the minutes per tokenizer shrink (equally) when the data
# step leaves less than 2 x MINUTES + 3 min of the BUDGET_S seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
MINUTES=${MINUTES:-6}
BUDGET_S=${BUDGET_S:-870}
DATA=${DATA:-/tmp/vq2_world}
OUT=${OUT:-/tmp/vq2_runs}
START=$(date +%s)
mkdir -p "$OUT"

# 0. data: 3000 world scenes (train + val split), rendered in-process
[[ -e $DATA ]] || fourm-data world --out "$DATA" --num 3000 --seed 0 --workers 0

# 1. equal training time for both (the cosine schedule follows the time limit; --steps is only a cap)
left=$(( BUDGET_S - ($(date +%s) - START) - 180 ))  # 3 min: start-ups, evaluations, summary
MINUTES=$(python -c "print(round(min($MINUTES, max($left, 60) / 120), 2))")
echo "training each tokenizer for $MINUTES min"
train() {  # name config [overrides...]
  local name=$1 config=$2
  shift 2
  fourm-tokenizer train --config "$config" --data "$DATA" --out "$OUT/$name" --overwrite \
    --max-minutes "$MINUTES" --steps 100000 "$@" >"$OUT/$name.train.log" 2>&1
  fourm-tokenizer eval --tokenizer "$OUT/$name/tokenizer" --data "$DATA" --split val \
    >"$OUT/$name.eval.json" 2>"$OUT/$name.eval.log"
}
train vqvae2 configs/tokenizers/rgb_vqvae2.yaml
train conv configs/tokenizers/rgb.yaml "channel_mult=[1,2,4,6]"

# 2. summary: parameters, tokens, steps, held-out metrics (the eval's JSON line)
python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

from tokenizers_zoo.image import ImageTokenizer

out = Path(sys.argv[1])
rows = {}
for name in ("vqvae2", "conv"):
    tok = ImageTokenizer.from_pretrained(out / name / "tokenizer")
    run = json.loads((out / name / "metrics.json").read_text())
    ev = json.loads((out / f"{name}.eval.json").read_text().strip().splitlines()[-1])
    rows[name] = {"params": sum(p.numel() for p in tok.parameters()), "tokens": tok.num_tokens,
                  "vocab": tok.vocab_size, "steps": run["steps"], "minutes": round(run["minutes"], 2),
                  "best_step": run["best"].get("step"), **ev}
print(json.dumps(rows, indent=1))
(out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
EOF
echo "done in $(( $(date +%s) - START )) s"
