"""Image tokenizers: conv / ViT / 1D (TiTok) encoders, VQ / FSQ / Gumbel quantisers, optional GAN or
diffusion decoder, one class for every image modality (rgb, depth, semseg, normals, edges)."""

from tokenizers_zoo.image.config import (
    DiffusionConfig,
    GanConfig,
    ImageTokenizerConfig,
    LossConfig,
    TrainConfig,
)
from tokenizers_zoo.image.tokenizer import ImageTokenizer

__all__ = [
    "DiffusionConfig",
    "GanConfig",
    "ImageTokenizer",
    "ImageTokenizerConfig",
    "LossConfig",
    "TrainConfig",
]
