"""What every codec shares: the per-sample list of raw values, checked token ids, and the codec of a
modality whose tokenizer is missing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fourm.errors import FourmError


def as_list(values: Any, name: str, single_ndim: int | None = None) -> list:
    """A list of per-sample values; a numpy batch (one more dim than a single value) is split."""
    if single_ndim is not None and isinstance(values, np.ndarray) and values.ndim == single_ndim + 1:
        return list(values)
    if isinstance(values, (str, dict, np.ndarray, Image.Image)) or not isinstance(values, Sequence):
        raise FourmError(
            f"tokenize('{name}', values) expects a list of values (one per sample), got {type(values).__name__}"
        )
    if not values:
        raise FourmError(f"tokenize('{name}', values): the list of values is empty")
    return list(values)


def check_ids(name: str, tokens: Any, vocab_size: int | None, length: int | None = None) -> Tensor:
    """Token ids (B, L) long on the CPU, checked against the vocabulary (if given) and length."""
    ids = torch.as_tensor(tokens.tokens if hasattr(tokens, "positions") else tokens).detach().cpu()
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise FourmError(f"{name}: expected integer token ids of shape (B, L), got {tuple(ids.shape)} {ids.dtype}")
    if length is not None and ids.shape[1] != length:
        raise FourmError(f"{name}: expected {length} tokens per sample, got {ids.shape[1]}")
    if vocab_size is not None and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise FourmError(f"{name}: token id {bad} out of range (expected 0..{vocab_size - 1})")
    return ids.long()


class MissingTokenizerCodec:
    """A modality whose tokenizer the bundle does not hold (``tokenizer: null`` in its registry entry,
    e.g. an ml-4m model converted without ``--tokenizer NAME=...``). Token ids of it can still be
    given and generated; raw values and decoding raise one FourmError naming the fix."""

    tokenizer = None  # nothing to save in a bundle

    def __init__(self, name: str, kind: str, length: int, vocab_size: int, root: str | Path = "") -> None:
        self.name, self.kind, self.length, self.vocab_size = name, kind, length, vocab_size
        self.root = str(root)

    def _fail(self) -> FourmError:
        where = f" {self.root}" if self.root else ""
        fix = "text=<text tokenizer>" if self.kind == "sequence" else f"{self.name}=<tokenizer>"
        return FourmError(
            f"modality '{self.name}' has no tokenizer in the bundle{where}: add it (for an ml-4m model: "
            f"fourm-convert ml4m SRC OUT --tokenizer {fix}), or give and take its token ids (decode=False)"
        )

    def normalize(self, value: Any) -> Any:
        raise self._fail()

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        raise self._fail()

    def decode(self, tokens: Any, seed: int = 0) -> list[Any]:
        raise self._fail()
