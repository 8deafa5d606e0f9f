"""Token layout of the dynamic image tokenizer: a variable set of (position, code) pairs as one sequence.

An image with kept patches ``p_1 < p_2 < ... < p_n`` (row-major patch indices) and their codes
``c_1 .. c_n`` becomes the sequence-kind row::

    [pos p_1] [code c_1] [pos p_2] [code c_2] ... [pos p_n] [code c_n] [EOS] [PAD] ...

Vocabulary (``vocab_size = num_reserved + num_positions + codebook_size``)::

    0 .. num_reserved - 1                    shared with the text vocabulary: [PAD]=0 [SOS]=1 [EOS]=2
                                             [UNK]=3 [MASK]=4 [S_0] .. (span sentinels), never emitted
                                             here except [EOS] and [PAD]
    num_reserved + p                         [pos p], p in 0 .. num_positions - 1
    num_reserved + num_positions + c         [code c], c in 0 .. codebook_size - 1

Keeping the text vocabulary's special ids means FourM's span masking (which takes its [PAD] /
[EOS] / sentinel ids from the text tokenizer) applies to this modality unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fourm.errors import FourmError

PAD_ID, SOS_ID, EOS_ID = 0, 1, 2


@dataclass(frozen=True)
class DynamicTokenLayout:
    """Packs (positions, codes) sets into padded id rows and reads them back (see the module docstring)."""

    num_reserved: int
    num_positions: int
    codebook_size: int

    @property
    def vocab_size(self) -> int:
        return self.num_reserved + self.num_positions + self.codebook_size

    @property
    def max_length(self) -> int:
        """Longest row: every patch kept (two ids each) plus [EOS]."""
        return 2 * self.num_positions + 1

    def pack(self, positions: Tensor, codes: Tensor) -> list[int]:
        """One image's kept positions (n,) and codes (n,) -> ids [pos][code] ... [EOS] (no padding)."""
        if positions.shape != codes.shape or positions.dim() != 1:
            raise FourmError(f"positions and codes must be 1D of one length, got {tuple(positions.shape)}, "
                             f"{tuple(codes.shape)}")  # fmt: skip
        pos = positions.long().cpu() + self.num_reserved
        code = codes.long().cpu() + self.num_reserved + self.num_positions
        return torch.stack([pos, code], dim=1).reshape(-1).tolist() + [EOS_ID]

    def pack_batch(self, sets: list[tuple[Tensor, Tensor]], length: int | None = None) -> Tensor:
        """Sets -> (B, length) long ids padded with [PAD] (length: ``max_length`` by default)."""
        length = self.max_length if length is None else length
        out = torch.full((len(sets), length), PAD_ID, dtype=torch.long)
        for row, (positions, codes) in enumerate(sets):
            ids = self.pack(positions, codes)
            if len(ids) > length:
                raise FourmError(f"{len(ids)} ids do not fit a row of length {length}")
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def unpack(self, ids: Tensor | list[int]) -> tuple[Tensor, Tensor]:
        """One row of ids -> (positions (n,), codes (n,)) sorted by position.

        Lenient, as generated rows may be malformed: reading stops at [EOS] or [PAD]; a [pos] not
        followed by a [code] and stray ids are skipped; a repeated position keeps its last code.
        """
        row = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        code_start = self.num_reserved + self.num_positions
        found: dict[int, int] = {}
        i = 0
        while i < len(row) and row[i] not in (EOS_ID, PAD_ID):
            tok = row[i]
            nxt = row[i + 1] if i + 1 < len(row) else None
            is_pos = self.num_reserved <= tok < code_start
            if is_pos and nxt is not None and code_start <= nxt < self.vocab_size:
                found[tok - self.num_reserved] = nxt - code_start
                i += 2
            else:
                i += 1
        keys = sorted(found)
        return torch.tensor(keys, dtype=torch.long), torch.tensor([found[k] for k in keys], dtype=torch.long)

    def code_ids(self, ids: Tensor) -> Tensor:
        """Codebook indices of every [code] id in ``ids`` (any shape) as a 1D tensor."""
        start = self.num_reserved + self.num_positions
        flat = ids.reshape(-1)
        return flat[(flat >= start) & (flat < self.vocab_size)] - start
