"""Text modalities: one extended text vocabulary for captions, bounding boxes, colour palettes and
metadata (structured tokens + a trained WordPiece vocabulary), and the serializers between them."""

from tokenizers_zoo.text.serializers import (
    bboxes_to_text,
    metadata_to_text,
    palette_to_text,
    parse_bbox_string,
    quantize_bboxes,
    quantize_metadata,
    quantize_palette,
    text_to_bboxes,
    text_to_metadata,
    text_to_palette,
)
from tokenizers_zoo.text.tokenizer import MODALITIES, TextTokenizer, TextTokenizerConfig, corpus_from_samples
from tokenizers_zoo.text.vocabulary import (
    SPECIAL_TOKENS,
    MetadataField,
    MetadataSpec,
    StructuredVocabConfig,
    parse_token,
    structured_tokens,
)

__all__ = [
    "MODALITIES",
    "SPECIAL_TOKENS",
    "MetadataField",
    "MetadataSpec",
    "StructuredVocabConfig",
    "TextTokenizer",
    "TextTokenizerConfig",
    "bboxes_to_text",
    "corpus_from_samples",
    "metadata_to_text",
    "palette_to_text",
    "parse_bbox_string",
    "parse_token",
    "quantize_bboxes",
    "quantize_metadata",
    "quantize_palette",
    "structured_tokens",
    "text_to_bboxes",
    "text_to_metadata",
    "text_to_palette",
]
