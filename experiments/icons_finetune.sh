#!/usr/bin/env bash
# Fine-tune the shipped model (models/world-default) on the Adwaita icons, keeping its trunk: rgb is
# read as pixels (rgb_pixels, already in the model), captions with the shipped text tokenizer, and the
# rgb rows re-initialised for the icons' own rgb tokenizer (trained by `fourm-recipe folder`, in
# runs/icons/tokenizers/rgb). Then the issue-18 figures of the fine-tuned bundle on the recipe's
# held-out split. See docs/experiments/own_data_icons.md.
#
#   bash experiments/icons_finetune.sh        (about 15 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/icons_ft}
TOKENS=${TOKENS:-data/icons_ft_tokens}
RGB_TOK=${RGB_TOK:-runs/icons/tokenizers/rgb/tokenizer}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# 1. tokens: the recipe's raw dataset (same 906 / 101 split), rgb with the icons' tokenizer,
#    caption with the shipped text tokenizer (the one the model knows), rgb as pixel patches
fourm-data tokenize --data runs/icons/data --out "$TOKENS" --modalities rgb,caption,rgb_pixels \
    --add-modality configs/modalities/extra/rgb_pixels.yaml \
    --tokenizer rgb="$RGB_TOK" --tokenizer caption=models/world-default/tokenizers/text

# 2. the shipped model with fresh rgb rows (every other weight bit-exact)
python - "$RUN/init" <<'PY'
import sys
from fourm.training.finetune import save_reinit_model
print(save_reinit_model("models/world-default/model", ["rgb"], sys.argv[1], seed=0))
PY

# 3. fine-tune (12 minutes, schedule by wall time)
nice -n 10 python train.py --config experiments/icons_finetune.yaml --out "$RUN/train" \
    --init-from "$RUN/init" --data "$TOKENS"

# 4. bundle (the shipped bundle's tokenizers, the icons' rgb tokenizer) and the figures
fourm-bundle "$RUN/train/model" "$RUN/bundle" --tokenizer rgb="$RGB_TOK"
python bench/own_data.py --bundle "$RUN/bundle" --data runs/icons/data --json "$RUN/own_data.json"
