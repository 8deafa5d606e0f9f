"""Retrieval items as model input: one item = one or several modalities of one sample, as token ids.

An item is a mapping ``{modality: ids}``: an image's full (L,) grid, a sequence's (n,) ids (read up
to its first [EOS], [PAD] dropped), a vector's (L,) ids, a patch modality's (N, P) pixel patches (or
flat (N * P,)), or a :class:`GivenTokens` of one row with
explicit positions/validity. A batch of items is packed into encoder rows (B, Ne) right-padded with
invalid columns, so items of different lengths (captions) share a batch::

    enc = pack_items(model.config, [{"caption": ids_a}, {"caption": ids_b, "rgb": grid}])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from fourm.errors import FourmError
from fourm.generation.conditions import (
    EncoderInputs,
    GivenTokens,
    as_patches,
    encoder_inputs,
    normalize_conditions,
)
from fourm.model.config import FourMConfig

Item = Mapping[str, "Tensor | Sequence[int] | GivenTokens"]

DEFAULT_EOS = 2  # the text tokenizer's [EOS] / [PAD] ids (fourm.data.masking.spans.SequenceSpecialTokens)
DEFAULT_PAD = 0


def signature(item: Mapping[str, object], config: FourMConfig) -> str:
    """The item's modalities in model order, joined by '+' (e.g. ``"rgb+caption"``)."""
    for name in item:
        config.modality_index(name)  # unknown modality -> FourmError listing the known ones
    return "+".join(n for n in config.modality_names if n in item)


def _given(config: FourMConfig, name: str, value: object, eos: int | None, pad: int | None) -> GivenTokens:
    """One modality of one item -> GivenTokens of one row."""
    config.modality_index(name)  # unknown modality -> FourmError listing the known ones
    if isinstance(value, GivenTokens):
        if value.batch_size != 1:
            raise FourmError(f"item modality '{name}' holds {value.batch_size} rows, expected one (one item)")
        return value
    ids = torch.as_tensor(value)
    mod = config.modalities[name]
    if mod.is_patches:  # pixel patches (N, P), or flat (N * P,) as a token dataset stores them
        return GivenTokens.patches(as_patches(f"item modality '{name}'", ids, mod.length, mod.patch_dim))
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1:
        raise FourmError(f"item modality '{name}' must be a 1-D tensor of token ids, got shape {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise FourmError(f"item modality '{name}' has no tokens")
    if mod.kind == "sequence":
        return GivenTokens.sequence(ids, eos=eos, pad=pad)
    if ids.numel() != mod.length:
        raise FourmError(
            f"item modality '{name}' has {ids.numel()} tokens but the {mod.kind} has {mod.length} "
            "(give GivenTokens.at(tokens, positions) for a partial one)"
        )
    return GivenTokens.at(ids)


def pack_items(
    config: FourMConfig,
    items: Sequence[Item],
    eos: int | None = DEFAULT_EOS,
    pad: int | None = DEFAULT_PAD,
    device: torch.device | str = "cpu",
) -> EncoderInputs:
    """Items -> encoder rows (B, Ne): each item's valid tokens first (model modality order), then
    padding. FourmError for an empty item, an unknown / non-input modality, ids or lengths out of range."""
    if not items:
        raise FourmError("no items to pack (expected at least one)")
    rows = []
    for i, item in enumerate(items):
        if not item:
            raise FourmError(f"item {i} holds no modality")
        given = {name: _given(config, name, value, eos, pad) for name, value in item.items()}
        try:
            given = normalize_conditions(config, given, 1, device)
        except FourmError as e:
            raise FourmError(f"item {i}: {e}") from None
        rows.append(encoder_inputs(config, given).compact())
    return EncoderInputs.stack(rows)


def batches(items: Sequence[Item], batch_size: int) -> Iterator[tuple[int, Sequence[Item]]]:
    """(start, items[start:start + batch_size]) chunks."""
    if batch_size < 1:
        raise FourmError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield start, items[start : start + batch_size]
