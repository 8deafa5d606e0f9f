"""Retrieval embeddings from a regressed continuous modality (:mod:`fourm.model.continuous`): the
model regresses e.g. ``caption_vector`` (a MiniLM caption embedding, 384-d) from an item of any
modalities in one encoder + one decoder pass, and the l2-normalised vector is the item's
embedding. Unlike ``predicted`` (:class:`fourm.retrieval.embed.PredictedEmbedder`) there is no
vector tokenizer: the vector lives in MiniLM's own space, so a query can be matched against true
MiniLM vectors of captions as well as against other regressed vectors::

    embedder = RegressedEmbedder(model, "caption_vector")
    keys = embedder([{"rgb": ids} for ids in rgb_tokens])        # (N, 384), unit norm
    scores, rows = EmbeddingIndex(keys).search(minilm(["a red cube"]), k=5)

The same vector comes out of generation (``FourMPipeline.generate(..., ["caption_vector"])``,
:mod:`fourm.generation.chain`, scheme ``value``): l2-normalised, a generated vector is a query for
the same index. An item may hold a continuous modality as input, as
``GivenTokens.continuous(values (1, L, C))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fourm.generation.regress import continuous_target, predict_vector
from fourm.generation.sampling import make_generator
from fourm.model.fourm import FourM
from fourm.retrieval.embed import _Embedder
from fourm.retrieval.items import Item


class RegressedEmbedder(_Embedder):
    """The model's regressed value of continuous target ``modality``, l2-normalised (N, L * C).

    ``steps`` / ``seed``: DDIM steps and noise seed of a diffusion head (a linear head ignores them)."""

    method = "regressed"

    def __init__(self, model: FourM, modality: str, steps: int = 20, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        continuous_target(model, modality)
        self.modality, self.steps, self.seed = modality, int(steps), int(seed)

    @property
    def dim(self) -> int:
        mod = self.model.config.modalities[self.modality]
        return mod.length * mod.value_dim

    def __call__(self, items: Sequence[Item], progress: bool = False) -> Tensor:
        generator = make_generator(self.seed, self.device)
        out = self._run(items, lambda enc: predict_vector(self.model, enc, self.modality, None, self.steps, generator),
                        progress, "regressed embeddings")  # fmt: skip
        return F.normalize(torch.cat(out).float(), dim=-1).cpu()

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "modality": self.modality, "steps": self.steps, "seed": self.seed}
