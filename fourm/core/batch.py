"""The packed multimodal batch: what masking produces and the FourM model consumes.

Every sample's encoder tokens from all modalities are packed into one row of fixed length ``Ne``
(its input budget), and its decoder tokens into one row of length ``Nd`` (its target budget). Each
token carries its modality index (into the model's modality order), its position within that
modality (image: row-major grid index; sequence: index in the sequence), and a validity flag
(False = padding, when a sample has fewer tokens than the budget). Token ids are local to their
modality's vocabulary; the model adds vocabulary offsets itself.

Decoder rules (enforced by the model from these fields): a decoder token attends only to decoder
tokens of the same modality; bidirectionally for image-like modalities, causally (by position) for
sequences. For image-like targets ``dec_input`` is ignored (a learned mask token is used); for
sequence targets it holds the previous token of the target sequence (teacher forcing).

Patch modalities (:mod:`fourm.core.patches`; input only, never on the decoder side): their encoder
slots have ``enc_tokens`` 0 and their content in ``enc_patches`` (B, Ne, P) uint8, the slot's pixel
patch (8-bit levels, zero-padded to ``P``, the largest patch_dim of the run's patch modalities).
Rows of other slots are 0. ``enc_patches`` is None when the run has no patch modality.

Continuous modalities (:mod:`fourm.model.continuous`; token ids 0): the float values of their
encoder slots are in ``enc_values`` (B, Ne, C) and of their decoder slots (the regression targets)
in ``dec_values`` (B, Nd, C), fp32, zero-padded to ``C``, the largest value_dim of the run's
continuous modalities; rows of other slots are 0. Both are None when the run has none.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class MultimodalBatch:
    enc_tokens: Tensor  # (B, Ne) long, modality-local ids
    enc_modality: Tensor  # (B, Ne) long, index into modality order
    enc_position: Tensor  # (B, Ne) long
    enc_valid: Tensor  # (B, Ne) bool
    dec_input: Tensor  # (B, Nd) long
    dec_target: Tensor  # (B, Nd) long
    dec_modality: Tensor  # (B, Nd) long
    dec_position: Tensor  # (B, Nd) long
    dec_valid: Tensor  # (B, Nd) bool
    enc_patches: Tensor | None = None  # (B, Ne, P) uint8, pixel patches of patch-modality slots
    enc_values: Tensor | None = None  # (B, Ne, C) float32, values of continuous-modality slots
    dec_values: Tensor | None = None  # (B, Nd, C) float32, target values of continuous-modality slots

    def to(self, device: torch.device | str) -> MultimodalBatch:
        return MultimodalBatch(
            **{f.name: None if (t := getattr(self, f.name)) is None else t.to(device) for f in fields(self)}
        )

    def pad_to(self, enc_width: int, dec_width: int) -> MultimodalBatch:
        """Right-pad the encoder rows to ``enc_width`` and the decoder rows to ``dec_width`` columns
        (padding: valid False, ids and patches 0); rows already as wide stay as they are."""
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            width = enc_width if f.name.startswith("enc_") else dec_width
            out[f.name] = None if t is None else pad_columns(t, width - t.shape[1])
        return MultimodalBatch(**out)

    @property
    def batch_size(self) -> int:
        return self.enc_tokens.shape[0]

    def num_tokens(self) -> int:
        """Number of valid (non-padding) encoder + decoder tokens."""
        return int(self.enc_valid.sum() + self.dec_valid.sum())

    @staticmethod
    def collate(items: list[MultimodalBatch]) -> MultimodalBatch:
        """Stack single-sample batches (each (1, N) or (N,); ``enc_patches`` (1, N, P) or (N, P), as
        ``enc_values`` / ``dec_values``) with right padding to the longest."""
        out = {}
        wide = ("enc_patches", "enc_values", "dec_values")
        for f in fields(MultimodalBatch):
            if f.name in wide:
                continue
            rows = [getattr(it, f.name).reshape(-1) for it in items]
            n = max(r.shape[0] for r in rows)
            pad_value = False if rows[0].dtype == torch.bool else 0
            out[f.name] = torch.stack(
                [torch.cat([r, r.new_full((n - r.shape[0],), pad_value)]) for r in rows]
            )
        for name in wide:
            width = out["enc_tokens" if name.startswith("enc_") else "dec_input"].shape[1]
            out[name] = _collate_patches(items, width, name)
        return MultimodalBatch(**out)


def pad_columns(t: Tensor, extra: int) -> Tensor:
    """``t`` (B, N, ...) with ``extra`` zero (False) columns appended along dim 1 (none if ``extra`` <= 0)."""
    if extra <= 0:
        return t
    return torch.cat([t, t.new_zeros(t.shape[0], extra, *t.shape[2:])], dim=1)


def _collate_patches(items: list[MultimodalBatch], n: int, name: str = "enc_patches") -> Tensor | None:
    """Stack the items' ``name`` rows (``enc_patches``, ``enc_values`` or ``dec_values``) into
    (B, n, P), zero-padded (None if no item has any; an item without them gets zero rows)."""
    given = [getattr(it, name) for it in items if getattr(it, name) is not None]
    if not given:
        return None
    p = max(t.shape[-1] for t in given)
    out = given[0].new_zeros(len(items), n, p)
    for i, it in enumerate(items):
        if getattr(it, name) is not None:
            rows = getattr(it, name).reshape(-1, getattr(it, name).shape[-1])
            out[i, : rows.shape[0], : rows.shape[1]] = rows
    return out
