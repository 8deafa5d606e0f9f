"""Sequence modalities (captions, boxes, palettes, metadata) with the shared ``TextTokenizer``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fourm.codecs.base import as_list, check_ids
from fourm.codecs.values import parse_value
from tokenizers_zoo.text import MODALITIES, serializers

FULL_LENGTH = 4096  # the cap of a value's untruncated length (:meth:`SequenceCodec.encode_unpadded`)


class SequenceCodec:
    """One sequence modality read and written with a :class:`tokenizers_zoo.text.TextTokenizer`."""

    kind = "sequence"
    strict = True

    def __init__(
        self, name: str, tokenizer: Any, max_length: int, text_kind: str | None = None, strict: bool = True
    ) -> None:
        """``strict`` False: metadata keys the tokenizer does not know are dropped, not refused
        (pre-tokenization: a dataset may carry keys its text vocabulary leaves out)."""
        self.name, self.tokenizer, self.length, self.strict = name, tokenizer, max_length, strict
        self.text_kind = text_kind or (name if name in MODALITIES else "caption")
        self.vocab_size: int = tokenizer.vocab_size
        self.sos, self.eos, self.pad = tokenizer.sos_id, tokenizer.eos_id, tokenizer.pad_id
        self._no_content = torch.tensor([*tokenizer.sentinel_ids, tokenizer.mask_id], dtype=torch.long)

    def normalize(self, value: Any) -> Any:
        """One raw value (strings parsed, see :mod:`fourm.codecs.values`), checked by serialising it."""
        value = parse_value(self.text_kind, value)
        self.tokenizer.to_text(self.text_kind, value, strict=self.strict)  # FourmError for a malformed value
        return value

    def _free_text(self, value: Any) -> bool:
        """Whether ``value`` is free text (a caption's string), not a structured value."""
        return self.text_kind == "caption" and isinstance(value, str)

    def is_blank(self, value: Any) -> bool:
        """Whether a free-text value (a caption) holds no text at all (structured values: never)."""
        return self._free_text(value) and not value.strip()

    def unknown_words(self, value: Any) -> list[str]:
        """Words of a free-text value its tokenizer reads as [UNK], in order ([] for structured values)."""
        if not self._free_text(value):
            return []
        unk = self.tokenizer.id_to_token(self.tokenizer.unk_id)
        return [w for w in value.split() if unk in self.tokenizer.tokenize(w)]

    def _encode(self, values: list[Any], max_length: int, prefix: bool = False) -> tuple[Tensor, Tensor]:
        """Normalised values -> (ids (B, max_length), lengths (B,)), truncation keeping the final [EOS]."""
        return self.tokenizer.encode_modality(
            self.text_kind, values, max_length, add_eos=not prefix, truncation=True, strict=self.strict
        )

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Values -> ids (B, max_length) ending in [EOS], padded with [PAD] (too long: truncated).

        ``prefix``: no [EOS], and only the first n columns, n = the longest value."""
        ids, lengths = self._encode([self.normalize(v) for v in as_list(values, self.name)], self.length, prefix)
        return ids[:, : int(lengths.max())] if prefix else ids

    def encode_unpadded(self, values: Any) -> tuple[list[list[int]], list[int]]:
        """Values -> (per value its ids as :meth:`encode` gives them, without the [PAD]s; per value the
        length of its whole ids with [EOS] before truncation, capped at :data:`FULL_LENGTH`: above
        ``length`` where :meth:`encode` cut it). Pre-tokenization stores the former, counts the latter."""
        vals = [self.normalize(v) for v in as_list(values, self.name)]
        _, full = self._encode(vals, FULL_LENGTH)
        ids, lengths = self._encode(vals, self.length)
        return [row[:n] for row, n in zip(ids.tolist(), lengths.tolist())], full.tolist()

    def decode(self, tokens: Any, seed: int = 0) -> list[Any]:
        """Ids (B, L) -> one value per row: stops at [EOS], ignores sentinels / [MASK], skips malformed
        groups of structured values (boxes, colours, metadata entries; see :meth:`decode_with_failures`)."""
        return self.decode_with_failures(tokens)[0]

    def decode_with_failures(self, tokens: Any) -> tuple[list[Any], list[list[dict[str, str]]]]:
        """Ids (B, L) -> (one value per row as :meth:`decode` gives it, per row the skipped groups as
        ``{"text": group text, "error": why it did not parse}``; empty lists when all parsed)."""
        ids = check_ids(self.name, tokens, None)
        # ids the text vocabulary lacks, span sentinels and [MASK] carry no content in a whole sequence
        drop = (ids < 0) | (ids >= self.vocab_size) | torch.isin(ids, self._no_content)
        ids = torch.where(drop, self.pad, ids)
        cfg = self.tokenizer.config.structured
        values, failures = [], []
        for text in self.tokenizer.decode(ids):
            failed: list[tuple[str, str]] = []
            if self.text_kind == "bboxes":
                value: Any = serializers.text_to_bboxes(text, cfg.coord_bins, strict=False, failures=failed)
            elif self.text_kind == "color_palette":
                value = serializers.text_to_palette(
                    text, cfg.color_levels, cfg.max_palette_size, strict=False, failures=failed
                )
            elif self.text_kind == "metadata":
                value = serializers.text_to_metadata(text, cfg.metadata, strict=False, failures=failed)
            else:
                value = self.tokenizer.from_text(self.text_kind, text, strict=False)
            values.append(value)
            failures.append([{"text": t, "error": e} for t, e in failed])
        return values, failures
