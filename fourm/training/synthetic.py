"""A tiny structured synthetic token dataset, for debug runs and tests of the training loop.

Each sample is drawn from a latent scene (shape class, ground colour, object quadrant) and
rendered into three aligned modalities: ``rgb`` (4x4 image tokens, vocabulary 32), ``depth``
(4x4 image tokens, vocabulary 16) and ``caption`` (a short token sequence ending with [EOS],
vocabulary 64). Every modality is predictable from the others, so a model that learns the
cross-modal structure gets well below the unigram entropy of the tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fourm.data.masking.spans import SequenceSpecialTokens
from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset

SPECIALS = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 11)))
INFO = TokenDatasetInfo(
    modalities={
        "rgb": ModalityTokens(kind="image", vocab_size=32, length=16),
        "depth": ModalityTokens(kind="image", vocab_size=16, length=16),
        "caption": ModalityTokens(kind="sequence", vocab_size=64, length=12),
    },
    specials=SPECIALS,
)
_GRID = 4


def synthetic_sample(rng: np.random.Generator, index: int) -> dict:
    """One sample {id, rgb (16,), depth (16,), caption (L,)} of int64 token ids."""
    shape, ground, quadrant = int(rng.integers(8)), int(rng.integers(4)), int(rng.integers(4))
    rows, cols = np.divmod(np.arange(_GRID * _GRID), _GRID)
    inside = (rows // 2 == quadrant // 2) & (cols // 2 == quadrant % 2)  # the object's 2x2 block
    rgb = np.where(inside, 4 + 3 * shape + (rows + cols) % 3, ground)
    depth = np.where(inside, 8 + shape, rows + (ground % 2) * 4)
    words = [11 + shape, 19 + ground, 23 + quadrant]
    if shape % 2:  # optional extra word: lengths vary
        words.append(27 + (shape + ground) % 5)
    caption = np.array([*words, SPECIALS.eos])
    return {"id": f"synthetic-{index:06d}", "rgb": rgb, "depth": depth, "caption": caption}


def synthetic_splits(num_train: int = 256, num_val: int = 32, seed: int = 0) -> dict[str, list[dict]]:
    """``{"train": [...], "val": [...]}`` of :func:`synthetic_sample` dicts, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    samples = [synthetic_sample(rng, i) for i in range(num_train + num_val)]
    return {"train": samples[:num_train], "val": samples[num_train:]}


def write_synthetic_tokens(out: str | Path, num_train: int = 256, num_val: int = 32, seed: int = 0) -> Path:
    """Write :func:`synthetic_splits` as a token dataset directory (atomically)."""
    return write_token_dataset(out, synthetic_splits(num_train, num_val, seed), INFO)
