"""Output heads of continuous modalities (``value_dim`` > 0): a target token's value is a float
vector regressed from the decoder output (Emu style) instead of a softmax over a vocabulary.

A continuous modality is a ``vector`` of ``length`` tokens of ``value_dim`` floats each (e.g. a
384-d caption embedding as one token of 384, or 4 tokens of 96). Its token ids are 0; the values
travel in the packed batch's ``enc_values`` / ``dec_values`` (:mod:`fourm.core.batch`). As an input
the model embeds a value with a linear projection (:class:`fourm.model.embeddings.PackedEmbeddings`);
as a target one of two heads reads the decoder output of its token:

* ``linear`` (:class:`LinearValueHead`): Linear(D, C); loss per token ``cosine`` (1 - cos) or
  ``mse`` (squared L2 distance, summed over the token's values), averaged over tokens.
* ``diffusion`` (:class:`fourm.model.diffusion_head.DiffusionHead`): a denoising MLP conditioned
  on the decoder output (``value_prediction`` / ``value_schedule``: v-prediction MSE on a
  zero-terminal-SNR cosine schedule by default; a saved config without them, from before they
  existed, loads as epsilon prediction on the cosine schedule); values are sampled with a DDIM
  scheduler (``steps``).

Both heads have ``loss(hidden (n, D), value (n, C)) -> scalar`` and ``predict(hidden, ...) -> (n, C)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from fourm.model.config import FourMConfig, ModalityConfig
from fourm.model.diffusion_head import DiffusionHead


def value_loss(pred: Tensor, target: Tensor, kind: str) -> Tensor:
    """Per-token loss (n,) of predictions (n, C) against targets (n, C): ``cosine`` = 1 - cos,
    ``mse`` = squared L2 distance (fp32)."""
    pred, target = pred.float(), target.float()
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(pred, target, dim=-1, eps=1e-8)
    return (pred - target).pow(2).sum(-1)


class LinearValueHead(nn.Module):
    """Regression head: value = Linear(D, C)(decoder output)."""

    def __init__(self, dim: int, value_dim: int, loss: str = "cosine") -> None:
        super().__init__()
        self.proj = nn.Linear(dim, value_dim)
        self.kind = loss

    def predict(self, hidden: Tensor, **_: object) -> Tensor:
        """(n, D) -> (n, C) fp32."""
        return self.proj(hidden).float()

    def loss(self, hidden: Tensor, value: Tensor) -> Tensor:
        return value_loss(self.predict(hidden), value, self.kind).mean()


class DiffusionValueHead(DiffusionHead):
    """:class:`DiffusionHead` with the value-head interface (``predict`` samples)."""

    def predict(self, hidden: Tensor, steps: int = 20, generator=None, **_: object) -> Tensor:
        """(n, D) -> (n, C) fp32: DDIM sampling in ``steps`` steps from noise drawn with ``generator``."""
        return self.sample(hidden.float(), steps=steps, generator=generator)


def build_value_head(dim: int, mod: ModalityConfig) -> nn.Module:
    """The output head of continuous target ``mod``."""
    if mod.value_head == "diffusion":
        return DiffusionValueHead(
            dim, mod.value_dim, scale=mod.value_scale, prediction_type=mod.value_prediction, schedule=mod.value_schedule
        )
    return LinearValueHead(dim, mod.value_dim, mod.value_loss)


def value_heads(config: FourMConfig) -> nn.ModuleDict | None:
    """{name: head} of the continuous targets of ``config`` (None without any, so models without
    continuous modalities keep their state dict)."""
    heads = {
        n: build_value_head(config.dim, m)
        for n, m in config.modalities.items()
        if m.is_continuous and m.target
    }
    return nn.ModuleDict(heads) if heads else None
