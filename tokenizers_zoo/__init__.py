"""tokenizers_zoo: per-modality tokenizers (quantisers, image and vector tokenizers) for fourm."""

from tokenizers_zoo.quantizers import (
    FSQ,
    CodebookUsage,
    GumbelQuantizer,
    Quantizer,
    QuantizerConfig,
    QuantizerOutput,
    VectorQuantizer,
    build_quantizer,
)
from tokenizers_zoo.vector import VectorTokenizer, VectorTokenizerConfig

__all__ = [
    "FSQ",
    "CodebookUsage",
    "GumbelQuantizer",
    "Quantizer",
    "QuantizerConfig",
    "QuantizerOutput",
    "VectorQuantizer",
    "VectorTokenizer",
    "VectorTokenizerConfig",
    "build_quantizer",
]
