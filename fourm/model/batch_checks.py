"""Validation of packed batch rows against a model's modalities, with one-line FourmError messages.

Shapes and dtypes are checked on the host; value ranges (modality index, role, position, token id
of every valid entry) with one device-to-host sync for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fourm.errors import FourmError


@dataclass
class ModalityLimits:
    """Per-modality limits as (M,) tensors on the model's device, in modality order."""

    names: list[str]
    vocab_sizes: Tensor  # (M,) long
    num_positions: Tensor  # (M,) long: rows of the position table
    allowed: Tensor  # (M,) bool: may appear on this side (input for encoder, target for decoder)
    causal: Tensor  # (M,) bool: sequence modality (its dec_input ids are real tokens)


def check_shapes(side: str, rows: dict[str, Tensor]) -> None:
    """Every tensor (B, N) alike; ``*_valid`` bool, the others integer."""
    first_name, first = next(iter(rows.items()))
    for name, t in rows.items():
        if t.dim() != 2 or t.shape != first.shape:
            raise FourmError(
                f"{side} tensors must all be (B, N); {first_name} is {tuple(first.shape)} but {name} is {tuple(t.shape)}"
            )
        if name.endswith("valid") and t.dtype != torch.bool:
            raise FourmError(f"{name} must be a bool tensor, got {t.dtype}")
        if not name.endswith("valid") and (t.dtype.is_floating_point or t.dtype == torch.bool):
            raise FourmError(f"{name} must be an integer tensor, got {t.dtype}")


def check_ranges(side: str, rows: dict[str, Tensor], id_fields: list[str], limits: ModalityLimits) -> None:
    """Valid entries of ``rows`` ("enc_*" or "dec_*") have known modalities allowed on this side,
    positions < length and ids in ``id_fields`` < vocab_size (dec_input: sequences only)."""
    modality, position, valid = (rows[f"{side}_{k}"] for k in ("modality", "position", "valid"))
    num = len(limits.names)
    m = modality.clamp(0, num - 1)
    bad = {
        f"{side}_modality": valid & ((modality < 0) | (modality >= num)),
        "role": valid & ~limits.allowed[m],
        f"{side}_position": valid & ((position < 0) | (position >= limits.num_positions[m])),
    }
    for name in id_fields:
        applies = valid & limits.causal[m] if name == "dec_input" else valid
        bad[name] = applies & ((rows[name] < 0) | (rows[name] >= limits.vocab_sizes[m]))
    flags = torch.stack([b.any() for b in bad.values()]).tolist()  # one host sync
    for (name, mask), flag in zip(bad.items(), flags):
        if flag:
            raise FourmError(_message(side, name, mask, rows, modality, limits))


def _message(side: str, name: str, mask: Tensor, rows: dict[str, Tensor], modality: Tensor, limits: ModalityLimits) -> str:
    """The error for the first flagged entry of ``mask``."""
    b, n = (int(i) for i in mask.nonzero()[0])
    mod = int(modality[b, n])
    if name.endswith("_modality"):
        known = ", ".join(limits.names)
        return f"{name}[{b}, {n}] = {mod} is not a modality index (expected 0..{len(limits.names) - 1}: {known})"
    mod_name = limits.names[mod]
    if name == "role":
        where, what = ("encoder", "an input (input: false)") if side == "enc" else ("decoder", "a target (target: false)")
        return f"modality '{mod_name}' is in the {where} but is not {what}"
    value = int(rows[name][b, n])
    is_position = name.endswith("_position")
    limit = int((limits.num_positions if is_position else limits.vocab_sizes)[mod])
    what = "positions" if is_position else "vocab_size"
    return f"{name}[{b}, {n}] = {value} is out of range for modality '{mod_name}' (expected 0..{limit - 1}, {what} {limit})"
