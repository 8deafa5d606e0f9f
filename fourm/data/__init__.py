"""Data layer: raw multimodal samples (procedural world, user folders, derived modalities),
pre-tokenization and masking."""
