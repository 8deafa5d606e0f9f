#!/usr/bin/env bash
# Round 21 of issue 16 (docs/experiments/default_model.md): the toy's failure bisected (token rows too small
# to read; small samples without targets), the shipped model with its sequence rows scaled up, and a short
# from-scratch A/B of the token init on the shipped recipe. One thread per run; two runs at a time at most.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export OMP_NUM_THREADS=1
# 1. FourM by a hand loop (caption -> the whole grid), parts swapped; the plain decoder made like FourM
(cd experiments
python relation_toy_bisect.py
python relation_toy_bisect.py --learned-positions
for p in sdpa relu_mlp unit_tokens; do python relation_toy_bisect.py --patch $p; done
python relation_toy_bisect.py --override init_std=1.0
python relation_toy_bisect.py --override token_init_std=1.0 --override tie_embeddings=true
python relation_toy_baseline.py --no-learned
python relation_toy_baseline.py --no-learned --encoder
python relation_toy_baseline.py --no-learned --fourm-embed --query-scale 0.25
python relation_toy_baseline.py --no-learned --encoder --fourm-embed
python relation_toy_baseline.py --no-learned --encoder --fourm-embed --query-scale 0.25
# 2. the relation task
python relation_toy_baseline.py --no-learned --task relation
python relation_toy_bisect.py --task relation --override token_init_std=1.0
python relation_toy_bisect.py --task relation --override token_init_std=1.0 --position-scale 1.0)
# 3. the real loop (before the masking fix: the first three; after it: the rest)
for std in 1.0 0.3; do python experiments/relation_toy.py --task absolute --token-init-std $std; done
python experiments/relation_toy.py --task relation --token-init-std 1.0 --steps 6000
python experiments/relation_toy.py --task relation --token-init-std 1.0 --position-scale 1.0
python experiments/relation_toy.py --task relation --token-init-std 1.0 --position-scale 1.0 --precision fp32
python experiments/relation_toy.py --task relation --token-init-std 1.0 --position-scale 1.0 --no-all-to-all
python experiments/relation_toy.py --task relation --token-init-std 1.0 --position-scale 1.0 --steps 4000
# 4. the shipped model, its sequence rows x 16, 2,000 steps (control: round 18's runs/r18_mix_more)
python experiments/scale_token_rows.py --model models/world-default/model --out runs/r21_scaled/init --factor 16 \
  caption bboxes metadata color_palette
python train.py --config experiments/configs/train/r21_scaled.yaml --out runs/r21_scaled/run --resume auto
bash scripts/bundle_world_model.sh runs/r21_scaled/run/model runs/r21_scaled/bundle
python bench/eval_world.py --model runs/r21_scaled/bundle --num 256 --tasks caption_to_rgb,caption_to_bboxes_to_rgb \
  --out runs/r21_scaled/eval_draw --no-progress
python experiments/relation_given_object.py --model runs/r21_scaled/bundle
# 5. the shipped recipe's stage 1 from scratch, 1,500 steps: as shipped (a) / token rows 1.0 and positions x 1.0
#    with the tied head at init scale (c); b was the same as c before the tied-head scale (stopped at 260 steps)
python train.py --config experiments/configs/train/r21_ab.yaml --out runs/r21_ab_a --resume auto &
python train.py --config experiments/configs/train/r21_ab.yaml --out runs/r21_ab_c --resume auto \
  model.overrides.token_init_std=1.0 model.overrides.position_scale=1.0
wait
# d: token rows 1.0, positions as shipped (two threads, alone)
OMP_NUM_THREADS=2 python train.py --config experiments/configs/train/r21_ab.yaml --out runs/r21_ab_d --resume auto \
  model.overrides.token_init_std=1.0
for v in a c d; do
  bash scripts/bundle_world_model.sh runs/r21_ab_$v/model runs/r21_ab_$v/bundle
  python bench/eval_world.py --model runs/r21_ab_$v/bundle --num 256 --tasks caption_to_rgb,caption_to_bboxes_to_rgb \
    --out runs/r21_ab_$v/eval_draw --no-progress
done
# a and d trained on for 1,500 more steps each
for v in a d; do
  python train.py --config experiments/configs/train/r21_ab.yaml --out runs/r21_ab_${v}2 --resume auto 'model.overrides={}' \
    model.init_from=runs/r21_ab_$v/model optim.warmup_steps=100 optim.lr=1e-3 &
done
wait
for v in a2 d2; do
  bash scripts/bundle_world_model.sh runs/r21_ab_$v/model runs/r21_ab_$v/bundle
  python bench/eval_world.py --model runs/r21_ab_$v/bundle --num 256 --tasks caption_to_rgb,caption_to_bboxes_to_rgb \
    --out runs/r21_ab_$v/eval_draw --no-progress
done
