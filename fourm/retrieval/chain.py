"""Chained items for predicted embeddings: the model first generates the modalities an item lacks.

4M generates one modality at a time, each finished one a condition of the next. A predicted
embedding can do the same (``via``): before the vector modality is predicted, each ``via``
modality the item does not hold is generated from what it holds so far (sequences greedily, token
by token; images / vectors by MaskGIT at temperature 0), and joins the item. An rgb item embedded
``via=["caption"]`` is thus embedded from the image *and* the model's own description of it, while
a caption item is left as it is, so queries and keys meet in the space the caption side predicts::

    completer = ItemCompleter(model, ["caption"], sequence_sampler=AutoregressiveSampler(0.0, sos=1, eos=2))
    items = completer(items)      # rgb items now also hold a generated caption (ids up to [EOS])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.generation.autoregressive import AutoregressiveSampler
from fourm.generation.decoding import ParallelDecoder, SequenceDecoder
from fourm.generation.maskgit import MaskGITSampler
from fourm.model.fourm import FourM
from fourm.retrieval.items import DEFAULT_EOS, DEFAULT_PAD, Item, batches, pack_items


def check_via(model: FourM, via: Sequence[str], exclude: str | None = None) -> list[str]:
    """``via`` without repeats, checked: each a modality the model both predicts and reads, not a
    patch modality and not ``exclude`` (the embedding's own vector modality). FourmError otherwise."""
    config = model.config
    names = list(dict.fromkeys(via))
    for name in names:
        config.modality_index(name)  # unknown -> FourmError listing the known modalities
        mod = config.modalities[name]
        if name == exclude:
            raise FourmError(f"'{name}' is the predicted embedding itself: it cannot also be generated first (via)")
        if not (mod.target and mod.input) or mod.is_patches:
            raise FourmError(
                f"cannot generate '{name}' first (via): the model must both predict it and read it back "
                f"(target: {str(mod.target).lower()}, input: {str(mod.input).lower()})"
            )
    return names


class ItemCompleter:
    """Adds the ``via`` modalities an item lacks, generated in order by the model (deterministic).

    ``sequence_sampler``: the autoregressive sampler of sequence modalities (greedy, with the text
    tokenizer's special ids; needed when ``via`` holds one); ``steps``: MaskGIT steps of
    image / vector modalities (at most one per token); ``amp``: a factory of the autocast context
    the model runs in; ``exclude``: a modality ``via`` may not hold (the embedding's own)."""

    def __init__(
        self,
        model: FourM,
        via: Sequence[str],
        sequence_sampler: AutoregressiveSampler | None = None,
        steps: int = 8,
        batch_size: int = 64,
        amp: Callable[[], contextlib.AbstractContextManager] | None = None,
        eos: int | None = DEFAULT_EOS,
        pad: int | None = DEFAULT_PAD,
        exclude: str | None = None,
    ) -> None:
        self.model, self.via = model, check_via(model, via, exclude)
        if steps < 1:
            raise FourmError(f"via steps must be >= 1, got {steps}")
        if batch_size < 1:
            raise FourmError(f"batch_size must be >= 1, got {batch_size}")
        if any(model.config.modalities[n].causal for n in self.via) and sequence_sampler is None:
            raise FourmError("generating a sequence first (via) needs a sequence sampler (the text tokenizer's ids)")
        if sequence_sampler is not None and sequence_sampler.temperature != 0:
            raise FourmError("the via sequence sampler must be greedy (temperature 0): embeddings are deterministic")
        self.sequence_sampler, self.steps, self.batch_size = sequence_sampler, int(steps), batch_size
        self.amp, self.eos, self.pad = amp, eos, pad
        self.device = next(model.parameters()).device

    def generate(self, name: str, items: Sequence[Item]) -> list[torch.Tensor]:
        """Modality ``name`` generated from each of ``items`` -> one id tensor per item: a sequence's
        ids up to and including [EOS], an image's / vector's full (L,) grid."""
        config = self.model.config
        mod = config.modalities[name]
        enc = pack_items(config, items, self.eos, self.pad, self.device)
        b = len(items)
        if mod.causal:
            decoder = SequenceDecoder(self.model, name, enc, [1.0])
            out = self.sequence_sampler.generate(decoder, b, mod.length, device=self.device)
            return [t[v].cpu() for t, v in zip(out.tokens, out.valid)]
        sampler = MaskGITSampler(min(self.steps, mod.length), temperature=0.0, confidence_noise=0.0)
        start = torch.zeros(b, mod.length, dtype=torch.long, device=self.device)
        tokens = sampler.generate(ParallelDecoder(self.model, name, enc, [1.0]), start, torch.zeros_like(start, dtype=torch.bool))
        return list(tokens.cpu())

    def __call__(self, items: Sequence[Item], progress: bool = False) -> list[Item]:
        """Copies of ``items``, each holding every ``via`` modality (generated where it was missing)."""
        out = [dict(item) for item in items]
        amp = self.amp() if self.amp is not None else contextlib.nullcontext()
        with torch.no_grad(), amp:
            for name in self.via:
                todo = [i for i, item in enumerate(out) if name not in item]
                chunks = list(batches(todo, self.batch_size))
                for _, rows in tqdm(chunks, desc=f"generate {name}", disable=not progress or not todo, leave=False):
                    for i, ids in zip(rows, self.generate(name, [out[i] for i in rows])):
                        out[i][name] = ids
        return out
