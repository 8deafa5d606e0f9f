"""Image tokenizers: conv / ViT / 1D (TiTok) encoders, VQ / FSQ / Gumbel quantisers, optional GAN or
diffusion decoder, one class for every image modality (rgb, depth, semseg, normals, edges)."""

from tokenizers_zoo.image.config import (
    DiffusionConfig,
    DynamicConfig,
    GanConfig,
    ImageTokenizerConfig,
    LossConfig,
    TrainConfig,
)
from tokenizers_zoo.image.dynamic_tokenizer import DynamicImageTokenizer  # registers architecture "dynamic"
from tokenizers_zoo.image.tokenizer import ImageTokenizer, build_image_tokenizer

__all__ = [
    "DiffusionConfig",
    "DynamicConfig",
    "DynamicImageTokenizer",
    "GanConfig",
    "ImageTokenizer",
    "ImageTokenizerConfig",
    "LossConfig",
    "TrainConfig",
    "build_image_tokenizer",
]
