"""Gumbel-softmax quantiser for discrete VAEs (Jang et al. 2017; Ramesh et al. 2021, DALL-E dVAE).

A 1x1 projection gives logits over the codebook; training samples a (soft or straight-through hard)
Gumbel-softmax mixture of code vectors; eval mode takes the argmax. The loss is KL(q || uniform).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from tokenizers_zoo.quantizers.base import (
    CodebookUsage,
    Quantizer,
    QuantizerOutput,
    channels_last_flat,
    linear_fp32,
    no_autocast,
    unflatten_channels_first,
    usage_metrics,
)


def exponential_temperature(
    step: int, start: float = 1.0, end: float = 1.0 / 16, anneal_steps: int = 100_000
) -> float:
    """Temperature decaying exponentially from ``start`` at step 0 to ``end`` at ``anneal_steps``, then flat.

    DALL-E anneals the dVAE relaxation temperature from 1 to 1/16 this way.
    """
    if start <= 0 or end <= 0 or anneal_steps < 1:
        raise FourmError(
            f"temperature schedule needs start, end > 0 and anneal_steps >= 1, got {start}, {end}, {anneal_steps}"
        )
    progress = min(max(step, 0) / anneal_steps, 1.0)
    return start * (end / start) ** progress


def kl_to_uniform(logits: Tensor) -> Tensor:
    """Mean over rows of KL(softmax(logits) || uniform) for logits (N, K); 0 for uniform logits."""
    log_q = F.log_softmax(logits, dim=-1)
    return (log_q.exp() * log_q).sum(-1).mean() + math.log(logits.shape[-1])


class GumbelQuantizer(Quantizer):
    """dVAE bottleneck: ``forward(z: (B, dim, *spatial))`` -> mixture of ``codebook_size`` code vectors.

    Metrics: perplexity, usage, kl, temperature. ``set_temperature`` (or :func:`exponential_temperature`)
    anneals the relaxation.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        temperature: float = 1.0,  # Gumbel-softmax relaxation temperature (Jang et al.)
        hard: bool = False,  # straight-through one-hot samples instead of soft mixtures
        kl_weight: float = 5e-4,  # weight of KL to the uniform prior (DALL-E uses ~6.6 / num_tokens)
    ):
        super().__init__()
        if dim < 1 or codebook_size < 2:
            raise FourmError(
                f"GumbelQuantizer needs dim >= 1 and codebook_size >= 2, got {dim}, {codebook_size}"
            )
        if kl_weight < 0:
            raise FourmError(f"GumbelQuantizer kl_weight must be >= 0, got {kl_weight}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.hard = hard
        self.kl_weight = kl_weight
        self.temperature = 1.0
        self.set_temperature(temperature)
        self.to_logits = nn.Linear(dim, codebook_size)  # the 1x1 projection, applied channels-last
        self.embedding = nn.Parameter(torch.randn(codebook_size, dim) / math.sqrt(dim))  # (K, dim)
        self.usage = CodebookUsage(codebook_size)  # running histogram; reset() before an eval pass

    def set_temperature(self, temperature: float) -> None:
        """Set the relaxation temperature used by training-mode forwards."""
        if not (temperature > 0 and math.isfinite(temperature)):
            raise FourmError(f"Gumbel temperature must be a positive number, got {temperature}")
        self.temperature = float(temperature)

    def logits(self, z: Tensor) -> Tensor:
        """z: (B, dim, *spatial) -> fp32 logits (B, K, *spatial)."""
        self.check_input(z)
        with no_autocast(z):
            flat, lead = channels_last_flat(z.float())
            return unflatten_channels_first(linear_fp32(self.to_logits, flat), lead)

    def forward(self, z: Tensor) -> QuantizerOutput:
        """z: (B, dim, *spatial) -> z_q (same shape and dtype), indices (B, *spatial), loss = w * KL."""
        self.check_input(z)
        with no_autocast(z):
            flat, lead = channels_last_flat(z.float())  # (N, dim)
            logits = linear_fp32(self.to_logits, flat)  # (N, K)
            if self.training:
                weights = F.gumbel_softmax(logits, tau=self.temperature, hard=self.hard, dim=-1)  # (N, K)
                indices = weights.detach().argmax(dim=-1)
            else:
                indices = logits.argmax(dim=-1)
                weights = F.one_hot(indices, self.codebook_size).float()
            z_q = weights @ self.embedding.float()  # (N, dim)
            kl = kl_to_uniform(logits)
            loss = self.kl_weight * kl
            self.usage.update(indices)
            metrics = usage_metrics(indices, self.codebook_size)
            metrics["kl"] = kl.detach()
            metrics["temperature"] = torch.tensor(self.temperature, device=z.device)
        z_q = unflatten_channels_first(z_q, lead).to(z.dtype)
        return QuantizerOutput(z_q=z_q, indices=indices.reshape(lead), loss=loss, metrics=metrics)

    def indices_to_latents(self, indices: Tensor) -> Tensor:
        """(B, *spatial) long -> (B, dim, *spatial) fp32 code vectors."""
        self.check_indices(indices)
        with no_autocast(indices):
            flat = F.embedding(indices.reshape(-1).long(), self.embedding.float())  # (N, dim)
        return unflatten_channels_first(flat, tuple(indices.shape))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, temperature={self.temperature}, "
            f"hard={self.hard}, kl_weight={self.kl_weight}"
        )
