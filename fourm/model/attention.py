"""Multi-head attention (self or cross) on ``F.scaled_dot_product_attention``, with optional QK-norm.

Self-attention fuses the Q, K, V projections into one matmul; cross-attention fuses K and V (of
the context). Masks are booleans, True = may attend, broadcastable to (B, H, Nq, Nk). For
incremental decoding, ``past_kv`` supplies earlier keys/values (self-attention: prepended to the new
ones; cross-attention: used instead of projecting ``context``) and ``use_cache=True`` also returns
the keys/values to reuse.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.model.linear import Linear
from fourm.model.norm import build_norm

KV = tuple[Tensor, Tensor]  # keys, values: (B, H, Nk, head_dim) each

_CPU_EXPLICIT = True  # CPU: batched matmuls + softmax instead of SDPA (see attend)


def set_cpu_attention(kind: Literal["explicit", "sdpa"]) -> None:
    """Choose the CPU attention implementation ("explicit" by default, "sdpa" to compare)."""
    global _CPU_EXPLICIT
    if kind not in ("explicit", "sdpa"):
        raise FourmError(f"unknown CPU attention '{kind}' (expected explicit or sdpa)")
    _CPU_EXPLICIT = kind == "explicit"


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0) -> Tensor:
    """softmax(q k^T / sqrt(head_dim), masked) v for (B, H, N, hd) queries and (B, H, Nk, hd) keys/values.

    Uses ``F.scaled_dot_product_attention`` except on the CPU, where SDPA picks its fused
    "flash" kernel whose backward is ~3x slower in bf16 than plain batched matmuls + softmax at
    these sizes (N ~ 128, hd = 64); the explicit form gives the same result.
    """
    if q.device.type != "cpu" or not _CPU_EXPLICIT:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))  # (B, H, N, Nk)
    if mask is not None:  # additive bias (B, 1, N, Nk), added in place: its backward is free
        scores.add_(torch.zeros(mask.shape, dtype=scores.dtype, device=mask.device).masked_fill_(~mask, float("-inf")))
    probs = scores.softmax(dim=-1)
    if dropout_p > 0:
        probs = F.dropout(probs, dropout_p)
    return torch.matmul(probs, v)  # (B, H, N, hd)


class Attention(nn.Module):
    """Multi-head attention; ``cross=True`` makes keys/values come from a context sequence."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        cross: bool = False,
        qk_norm: bool = False,
        norm: Literal["layernorm", "rmsnorm"] = "layernorm",
        dropout: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise FourmError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.head_dim, self.cross = dim, num_heads, dim // num_heads, cross
        if cross:
            self.q = Linear(dim, dim)
            self.kv = Linear(dim, 2 * dim, parts=2)
        else:
            self.qkv = Linear(dim, 3 * dim, parts=3)
        self.proj = Linear(dim, dim)
        self.q_norm = build_norm(norm, self.head_dim, eps) if qk_norm else nn.Identity()
        self.k_norm = build_norm(norm, self.head_dim, eps) if qk_norm else nn.Identity()
        self.dropout = dropout
        self.proj_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def _heads(self, t: Tensor, parts: int) -> tuple[Tensor, ...]:
        """(B, N, parts*D) -> ``parts`` tensors (B, H, N, head_dim)."""
        b, n, _ = t.shape
        t = t.view(b, n, parts, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return t.unbind(0)

    def project_kv(self, context: Tensor) -> KV:
        """Keys and values (B, H, M, head_dim) of a context (B, M, D) for cross-attention."""
        k, v = self._heads(self.kv(context), 2)
        return self.k_norm(k), v

    def forward(
        self,
        x: Tensor,  # (B, N, D)
        context: Tensor | None = None,  # (B, M, D), cross-attention only
        attn_mask: Tensor | None = None,  # bool, broadcastable to (B, H, N, Nk)
        past_kv: KV | None = None,
        use_cache: bool = False,
    ) -> Tensor | tuple[Tensor, KV]:
        b, n, _ = x.shape
        if self.cross:
            (q,) = self._heads(self.q(x), 1)
            if past_kv is not None:
                k, v = past_kv
            elif context is not None:
                k, v = self.project_kv(context)
            else:
                raise FourmError("cross-attention needs a context or precomputed past_kv")
        else:
            q, k, v = self._heads(self.qkv(x), 3)
            k = self.k_norm(k)
            if past_kv is not None:
                k, v = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)
        q = self.q_norm(q)
        out = attend(q, k, v, attn_mask, self.dropout if self.training else 0.0)  # (B, H, N, head_dim)
        out = self.proj_dropout(self.proj(out.transpose(1, 2).reshape(b, n, self.dim)))
        return (out, (k, v)) if use_cache else out
