"""Which old code each code of a new image tokenizer stands for: a bridge between two tokenizers of one
modality, so that a trained FourM can start its new vocabulary rows from its old ones
(``model.row_maps`` in a training config, :func:`fourm.training.finetune.reinit_modalities`).

Both tokenizers encode the same images; every new code maps to the old code that most often covers
the same patch. ``agreement`` is the share of patches where that old code is the old tokenizer's
token (1.0: the new codes refine the old ones).

    fourm-tokenizer code-map --old runs/tok/rgb/tokenizer --new runs/tok/rgb_v2/tokenizer --data data/world \\
        --out runs/tok/rgb_v2/code_map.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_write_text
from fourm.utils.config import read_json_object

NO_CODE = -1  # a new code no image used: its row starts afresh


@dataclass
class CodeMap:
    """``mapping[j]``: the old code for new code j (``NO_CODE`` where j was never used);
    ``agreement``: the share of patches whose old token is the mapped one."""

    mapping: list[int]
    old_vocab: int
    agreement: float
    patches: int

    def save(self, path: str | Path) -> None:
        """Write JSON atomically."""
        data = {"mapping": self.mapping, "old_vocab": self.old_vocab, "agreement": self.agreement, "patches": self.patches}
        atomic_write_text(path, json.dumps(data) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CodeMap:
        """Read a code map written by :meth:`save`; FourmError on a missing or malformed file."""
        data = read_json_object(path, "code map")
        try:
            out = cls([int(c) for c in data["mapping"]], int(data["old_vocab"]), float(data["agreement"]),
                      int(data["patches"]))  # fmt: skip
        except (ValueError, KeyError, TypeError) as e:  # a field missing or of the wrong type
            raise FourmError(f"code map {path} is malformed ({e}); write it again with fourm-tokenizer code-map") from None
        if any(not NO_CODE <= c < out.old_vocab for c in out.mapping):
            raise FourmError(f"code map {path} names codes outside the old vocabulary of {out.old_vocab}")
        return out


@torch.no_grad()
def build_code_map(old, new, arrays: np.ndarray, batch_size: int = 256, progress: bool = True) -> CodeMap:
    """The :class:`CodeMap` from ``old`` to ``new`` (ImageTokenizers of one modality and token grid)
    over ``arrays`` (raw images, stacked)."""
    if old.modality != new.modality or old.grid_size != new.grid_size:
        raise FourmError(
            f"the two tokenizers do not cover the same patches: {old.modality} {old.grid_size} vs "
            f"{new.modality} {new.grid_size}"
        )
    counts = torch.zeros(new.vocab_size, old.vocab_size, dtype=torch.float64)
    for start in tqdm(range(0, len(arrays), batch_size), desc="code map", disable=not progress, leave=False):
        images = old.preprocess(arrays[start : start + batch_size])
        a, b = old.encode(images).flatten(), new.encode(images).flatten()
        counts.index_put_((b, a), torch.ones_like(a, dtype=torch.float64), accumulate=True)
    best, used = counts.argmax(1), counts.sum(1) > 0
    mapping = torch.where(used, best, torch.full_like(best, NO_CODE))
    agreement = float(counts.max(1).values.sum() / counts.sum().clamp_min(1))
    return CodeMap(mapping.tolist(), old.vocab_size, agreement, int(counts.sum()))
