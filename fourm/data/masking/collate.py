"""DataLoader glue for masking: per-(seed, epoch, index) RNGs, a masked dataset, and collate.

Every sample's masks come from ``make_rng(seed, epoch, index)``, so they do not depend on the
worker that produced them, on the number of workers, or on what ran before: a run resumed at
epoch ``e`` reproduces the masks exactly. The epoch lives in a shared-memory tensor, so
``set_epoch`` also reaches persistent DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from fourm.core.batch import MultimodalBatch
from fourm.data.masking.masker import Masker


def make_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """An independent NumPy generator for one (seed, epoch, sample index)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch), int(index)])))


class MaskedDataset(Dataset):
    """Wrap a dataset of token samples: item ``i`` is ``masker(samples[i], rng(seed, epoch, i))``.

    In deterministic mode (``masker.config.deterministic``) the epoch is ignored, so evaluation
    sees the same masks every time.
    """

    def __init__(self, samples: Sequence, masker: Masker, seed: int | None = None):
        self.samples = samples
        self.masker = masker
        self.seed = masker.config.seed if seed is None else seed
        self._epoch = torch.zeros(1, dtype=torch.long).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Select the masks of ``epoch`` (visible to already-running workers)."""
        self._epoch[0] = epoch

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> MultimodalBatch:
        epoch = 0 if self.masker.config.deterministic else self.epoch
        return self.masker(self.samples[index], make_rng(self.seed, epoch, index))


def collate(items: list[MultimodalBatch], pad_to_multiple: int = 1) -> MultimodalBatch:
    """Stack single-sample batches into (B, N) rows (``enc_patches``: (B, N, P)), right-padded
    (valid False, ids and patches 0) to the longest row rounded up to a multiple of ``pad_to_multiple``."""
    batch = MultimodalBatch.collate(items)
    if pad_to_multiple > 1:
        ne, nd = batch.enc_valid.shape[1], batch.dec_valid.shape[1]
        batch = batch.pad_to(ne + -ne % pad_to_multiple, nd + -nd % pad_to_multiple)
    return batch
