"""Vector modalities (e.g. caption embeddings) with a ``VectorTokenizer``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from fourm.codecs.base import as_list, check_ids
from fourm.errors import FourmError


class VectorCodec:
    """One vector modality (a :class:`tokenizers_zoo.vector.VectorTokenizer`)."""

    kind = "vector"

    def __init__(self, name: str, tokenizer: Any) -> None:
        self.name, self.tokenizer = name, tokenizer.eval()
        self.length, self.vocab_size = tokenizer.num_tokens, tokenizer.vocab_size
        self.dim: int = tokenizer.cfg.input_dim

    def normalize(self, value: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != (self.dim,) or not np.isfinite(arr).all():
            raise FourmError(f"{self.name}: expected a finite vector of shape ({self.dim},), got {tuple(arr.shape)}")
        return arr

    @torch.no_grad()
    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        if prefix:
            raise FourmError(f"'{self.name}' is a vector: a partial vector is given as token ids, not as a prefix")
        x = torch.as_tensor(np.stack([self.normalize(v) for v in as_list(values, self.name, 1)]))
        device = next(self.tokenizer.parameters()).device
        return self.tokenizer.encode(x.to(device)).cpu()

    @torch.no_grad()
    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        device = next(self.tokenizer.parameters()).device
        ids = check_ids(self.name, tokens, self.vocab_size, self.length).to(device)
        return list(self.tokenizer.decode(ids).float().cpu().numpy())
