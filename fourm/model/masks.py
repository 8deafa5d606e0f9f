"""Attention masks of the FourM encoder and decoder, built once per forward (True = may attend).

Every row allows at least one key, so attention never normalises over an empty set (no NaN):
padding rows attend to themselves only.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _self_keys(nq: int, nk: int, device: torch.device) -> Tensor:
    """(Nq, Nk) bool: query i's own key, the last Nq keys being the queries themselves."""
    return torch.arange(nk, device=device)[None, :] == torch.arange(nk - nq, nk, device=device)[:, None]


def encoder_attention_mask(valid: Tensor) -> Tensor:
    """valid (B, N) -> (B, 1, N, N): valid tokens attend to all valid tokens."""
    n = valid.shape[1]
    return ((valid[:, :, None] & valid[:, None, :]) | _self_keys(n, n, valid.device))[:, None]


def decoder_attention_mask(
    modality: Tensor,  # (B, Nq) long
    position: Tensor,  # (B, Nq) long
    valid: Tensor,  # (B, Nq) bool
    causal_modalities: Tensor,  # (M,) bool, True for sequence (causal) modalities
    key_modality: Tensor | None = None,  # (B, Nk), default: the queries themselves
    key_position: Tensor | None = None,
    key_valid: Tensor | None = None,
) -> Tensor:
    """(B, 1, Nq, Nk): valid query i attends to valid keys j of its own modality, and for causal
    modalities only to those with position[j] <= position[i].

    With ``key_*`` given (incremental decoding), the keys are earlier tokens followed by the
    queries, so the last Nq keys are the queries themselves.
    """
    if key_modality is None:
        key_modality, key_position, key_valid = modality, position, valid
    same = modality[:, :, None] == key_modality[:, None, :]  # (B, Nq, Nk)
    causal_query = causal_modalities[modality.clamp(0, causal_modalities.numel() - 1)]  # (B, Nq)
    earlier = key_position[:, None, :] <= position[:, :, None]  # key j not after query i
    allowed = same & (earlier | ~causal_query[:, :, None]) & key_valid[:, None, :] & valid[:, :, None]
    return (allowed | _self_keys(modality.shape[1], key_modality.shape[1], modality.device))[:, None]


def cross_attention_mask(context_valid: Tensor) -> Tensor:
    """context_valid (B, Ne) -> (B, 1, 1, Ne): attend to valid encoder tokens.

    A sample without any valid encoder token attends to all of them; the model zeroes padded
    context, so its keys and values are 0 (no biases) and the cross-attention output is 0."""
    empty = ~context_valid.any(dim=1, keepdim=True)  # (B, 1)
    return (context_valid | empty)[:, None, None, :]
