"""Generation of a continuous modality (``value_dim`` > 0, :mod:`fourm.model.continuous`): one
encoder pass over the conditions, one decoder pass over the target's ``length`` query tokens, and
the value head's output (regression: the vector itself; diffusion: ``steps`` DDIM steps of the
denoising head on the decoder output, no further trunk passes)::

    vec = regress_vector(model, {"caption": caption_ids}, "caption_vector")       # (1, 384)
    vec = regress_vector(model, {"rgb_pixels": patches}, "caption_vector", num_samples=4)

Conditions are as in :mod:`fourm.generation.conditions` (token ids, ``GivenTokens``, pixel
patches); a continuous condition is its float values, (L * C,) / (B, L * C) or (L, C) / (B, L, C).
In a chain (:func:`fourm.generation.chain.generate_chained`, scheme ``value``) the same
:func:`predict_vector` makes the vector.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from fourm.errors import FourmError
from fourm.generation.conditions import (
    EncoderInputs,
    GivenTokens,
    as_values,
    encoder_inputs,
    normalize_conditions,
)
from fourm.model.fourm import FourM


def continuous_target(model: FourM, name: str) -> None:
    """FourmError unless ``name`` is a continuous target of ``model``."""
    mod = model.config.modalities.get(name)
    if mod is None:
        raise FourmError(f"unknown modality '{name}' (known: {', '.join(model.modality_names)})")
    if not mod.is_continuous or not mod.target:
        known = ", ".join(model.value_names) or "none"
        raise FourmError(
            f"modality '{name}' is not a continuous target of the model (continuous targets: {known})"
        )


def _batch_size(config, name: str, value) -> int:
    """Rows of one condition: 1 for an unbatched one."""
    mod = config.modalities[name]
    if isinstance(value, GivenTokens):
        return value.tokens.shape[0]
    if mod.is_continuous:
        return as_values(f"condition '{name}'", value, mod.length, mod.value_dim).shape[0]
    t = torch.as_tensor(value)
    batched_dims = 3 if mod.is_patches and t.shape[-1] == mod.patch_dim else 2
    return t.shape[0] if t.dim() >= batched_dims else 1


@torch.no_grad()
def predict_vector(
    model: FourM,
    enc: EncoderInputs,
    name: str,
    enc_values: Tensor | None = None,
    steps: int = 20,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Encoder rows (B, Ne) (their continuous values: ``enc_values`` (B, Ne, C), default ``enc.values``)
    -> the values (B, L * C) of continuous target ``name``, fp32."""
    continuous_target(model, name)
    mod = model.config.modalities[name]
    b, device = enc.batch_size, enc.tokens.device
    if enc_values is None:
        enc_values = enc.values
    if enc.width == 0:
        enc = enc.pad_to(1)
        if enc_values is not None:
            enc_values = torch.zeros(b, 1, enc_values.shape[-1], device=device)
    context = model.encode(enc.tokens, enc.modality, enc.position, enc.valid, enc.patches, values=enc_values)
    pos = torch.arange(mod.length, device=device).expand(b, -1)
    modality = torch.full_like(pos, model.config.modality_index(name))
    valid = torch.ones_like(pos, dtype=torch.bool)
    hidden = model.decode(context, enc.valid, torch.zeros_like(pos), modality, pos, valid)
    out = model.predict_values(hidden, modality, valid, steps=steps, generator=generator)[name]  # (B * L, C)
    return out.float().reshape(b, mod.length * mod.value_dim)


def regress_vector(
    model: FourM,
    conditions: Mapping[str, object],
    name: str,
    num_samples: int | None = None,
    steps: int = 20,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The values (B, L * C) of continuous target ``name`` given ``conditions`` (see the module
    docstring); B = ``num_samples``, else the largest batch of a condition (1 for 1-D ones)."""
    continuous_target(model, name)
    config = model.config
    device = next(model.parameters()).device
    for key in conditions:
        config.modality_index(key)
    if name in conditions:
        raise FourmError(f"'{name}' is both a condition and the target")
    if num_samples is None:
        num_samples = max([_batch_size(config, k, v) for k, v in conditions.items()], default=1)
    given = normalize_conditions(config, conditions, num_samples, device)
    enc = encoder_inputs(config, given, batch_size=num_samples, device=device)
    was_training = model.training
    model.eval()
    try:
        return predict_vector(model, enc, name, None, steps, generator)
    finally:
        model.train(was_training)
