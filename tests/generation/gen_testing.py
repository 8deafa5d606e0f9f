"""Tiny random FourM models and helpers shared by the generation tests."""

from __future__ import annotations

import torch

from fourm.model import FourM, FourMConfig, ModalityConfig

# order = modality index: 0 rgb, 1 depth, 2 caption, 3 meta
TOY_MODALITIES = {
    "rgb": ModalityConfig("image", 32, 16),
    "depth": ModalityConfig("image", 24, 9),
    "caption": ModalityConfig("sequence", 40, 12),
    "meta": ModalityConfig("vector", 16, 3),
}
SOS, EOS, PAD = 1, 2, 0


def toy_model(seed: int = 0, **overrides) -> FourM:
    """dim 32, 2+2 blocks, 4 heads over TOY_MODALITIES, random weights, eval mode."""
    torch.manual_seed(seed)
    fields = {"dim": 32, "enc_depth": 2, "dec_depth": 2, "num_heads": 4, **overrides}
    config = FourMConfig.from_dict({**fields, "modalities": dict(TOY_MODALITIES)})
    model = FourM(config).eval()
    with torch.no_grad():  # larger output heads: sharper, seed-sensitive distributions
        if model.output_weight is not None:
            model.output_weight.mul_(20.0)
    return model


def random_tokens(name: str, n: int | None = None, batch: int | None = None, seed: int = 0) -> torch.Tensor:
    """Random ids of modality ``name``: (n,) or (batch, n), n defaulting to its length."""
    mod = TOY_MODALITIES[name]
    shape = (n or mod.length,) if batch is None else (batch, n or mod.length)
    return torch.randint(mod.vocab_size, shape, generator=torch.Generator().manual_seed(seed))
