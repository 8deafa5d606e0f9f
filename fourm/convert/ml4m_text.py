"""Conversion of the text vocabulary of the released 4M models (apple/ml-4m) into a fourm tokenizer
directory: :func:`convert_ml4m_text`.

The tokenizer itself (:class:`~tokenizers_zoo.text.ml4m_wordpiece.Ml4mTextTokenizer`, ml-4m's WordPiece
vocabulary and 4M's serialisation of structured modalities into it) lives in
:mod:`tokenizers_zoo.text.ml4m_wordpiece`, below the generation code that loads it; its names are
re-exported here.

Usage::

    tok = Ml4mTextTokenizer.load("text_tokenizer_4m_wordpiece_30k.json")
    convert_ml4m_text(src, "models/text")   # -> tokenizer.json + config.json (format ml4m-wordpiece)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tokenizers_zoo.text.ml4m_wordpiece import (
    CONFIG_FILE,
    DET_SCORE_THRESHOLD,
    EOS,
    FORMAT,
    IMAGE_DIM_BIN,
    MAX_TOKENS,
    METADATA_KEYS,
    MODALITIES,
    PAD,
    SERIALIZED,
    SOS,
    SPECIAL_TOKENS,
    TOKENIZER_FILE,
    UNK,
    VALUE_FAMILIES,
    VALUE_RANGE,
    MetadataKey,
    Ml4mTextTokenizer,
    det_to_text,
    metadata_to_chunks,
    metadata_to_text,
    palette_to_text,
    text_to_det,
    text_to_metadata,
    text_to_palette,
)

__all__ = [
    "CONFIG_FILE",
    "DET_SCORE_THRESHOLD",
    "EOS",
    "FORMAT",
    "IMAGE_DIM_BIN",
    "MAX_TOKENS",
    "METADATA_KEYS",
    "MODALITIES",
    "MetadataKey",
    "Ml4mTextTokenizer",
    "PAD",
    "SERIALIZED",
    "SOS",
    "SPECIAL_TOKENS",
    "TOKENIZER_FILE",
    "UNK",
    "VALUE_FAMILIES",
    "VALUE_RANGE",
    "convert_ml4m_text",
    "det_to_text",
    "metadata_to_chunks",
    "metadata_to_text",
    "palette_to_text",
    "text_to_det",
    "text_to_metadata",
    "text_to_palette",
]


def convert_ml4m_text(src: str | Path, out: str | Path) -> Ml4mTextTokenizer:
    """Check ml-4m's tokenizer file ``src`` and write it into the fourm directory ``out``
    (``tokenizer.json`` copied byte for byte + ``config.json`` describing its layout)."""
    from fourm.utils.atomic import atomic_dir

    src = Path(src).expanduser()
    tok = Ml4mTextTokenizer.load(src)
    file = src / TOKENIZER_FILE if src.is_dir() else src
    with atomic_dir(out) as tmp:
        shutil.copyfile(file, tmp / TOKENIZER_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(tok.describe(), indent=2) + "\n")
    return tok
