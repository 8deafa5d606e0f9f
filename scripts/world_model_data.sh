# The default model's data commands, one home for scripts/build_default_model.sh (stages 2-3) and
# experiments/model_tokens_from_bundle.sh. Source it; each function writes one folder under data/.
#   . scripts/world_model_data.sh; model_scenes; model_embeddings; model_tokens runs/default_stage

# 24,000 fresh world scenes (seed 1, 5% val) -> data/world_model
model_scenes() {
  fourm-data world --out data/world_model --num 24000 --seed 1 --val-fraction 0.05
}

# MiniLM caption embeddings (a vector column) -> data/world_model_ce
model_embeddings() {
  fourm-data embed --data data/world_model --source caption --name caption_embedding --out data/world_model_ce
}

# tokens of every modality with the tokenizers in $1/tokenizers (a build's stage folder or a bundle)
# -> data/world_model_tokens
model_tokens() {
  local extra=configs/modalities/extra
  fourm-data tokenize --data data/world_model_ce --out data/world_model_tokens --tokenizer-root "$1" \
    --add-modality "$extra/caption_embedding.yaml" --add-modality "$extra/rgb_pixels.yaml" \
    --add-modality "$extra/box_map.yaml" \
    --modalities rgb,depth,semseg,edges,caption,bboxes,metadata,color_palette,caption_embedding,rgb_pixels,box_map
}
