"""Deepen a trained FourM without changing what it computes (block expansion).

:func:`grow_decoder` follows chosen decoder blocks with a copy of themselves whose output
projections (self-attention, cross-attention, MLP down-projection) are zero: each new block adds
nothing to the residual stream until training moves it, so the grown model's outputs equal the old
model's exactly, and a continuation starts where the old model was, with more capacity where the
sequences are written. ``model.grow_decoder: [1, 3]`` in a train config (with ``model.init_from``)
applies it before training.

    grown, new = grow_decoder(FourM.from_pretrained("models/world-default/model"), after=[1, 3])
    grown.config.dec_depth   # 4 -> 6; ``new``: {parameter name: all-True mask} of the new blocks
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fourm.errors import FourmError
from fourm.model import FourM

# the parameters of a DecoderBlock that write into the residual stream
ZERO_OUTPUTS = ("self_attn.proj.", "cross_attn.proj.", "mlp.down.")


def check_grow_after(after: Sequence[int], depth: int) -> list[int]:
    """``after`` as a sorted list; FourmError unless its entries are distinct blocks 0..depth-1."""
    whole = all(isinstance(i, int) and not isinstance(i, bool) for i in after)
    blocks = sorted(after) if whole else []
    if not whole or len(set(blocks)) != len(blocks) or any(not 0 <= i < depth for i in blocks):
        raise FourmError(
            f"model.grow_decoder: expected distinct decoder blocks in 0..{depth - 1}, got {list(after)}"
        )
    return blocks


@torch.no_grad()
def grow_decoder(model: FourM, after: Sequence[int]) -> tuple[FourM, dict[str, Tensor]]:
    """A FourM with ``len(after)`` more decoder blocks: old block i is followed by its copy with zero
    output projections, for every i in ``after``. Every other weight is ``model``'s, bit-exactly.
    Returns the model and ``{new parameter: all-True mask}`` (new weights, as ``OldParamsControl``
    takes them)."""
    blocks = check_grow_after(after, model.config.dec_depth)
    grown = FourM(model.config.replace(dec_depth=model.config.dec_depth + len(blocks)))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")}
    masks: dict[str, Tensor] = {}
    new = 0
    for i, block in enumerate(model.decoder):
        for key, value in block.state_dict().items():
            state[f"decoder.{new}.{key}"] = value
        new += 1
        if i in blocks:
            for key, value in block.state_dict().items():
                zero = key.startswith(ZERO_OUTPUTS)
                state[f"decoder.{new}.{key}"] = torch.zeros_like(value) if zero else value.clone()
                masks[f"decoder.{new}.{key}"] = torch.ones(value.shape[0], dtype=torch.bool)
            new += 1
    grown.load_state_dict(state)
    params = dict(grown.named_parameters())
    return grown, {k: m for k, m in masks.items() if k in params}
