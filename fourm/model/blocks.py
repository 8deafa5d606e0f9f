"""Pre-norm transformer blocks: encoder (self-attention + MLP) and decoder (self-attention +
cross-attention to the encoder output + MLP)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from fourm.model.attention import KV, Attention
from fourm.model.mlp import SwiGLU
from fourm.model.norm import build_norm


class EncoderBlock(nn.Module):
    """x + Attn(norm(x)), then x + MLP(norm(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        qk_norm: bool = False,
        norm: Literal["layernorm", "rmsnorm"] = "layernorm",
        dropout: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = build_norm(norm, dim, eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, norm=norm, dropout=dropout, eps=eps)
        self.norm2 = build_norm(norm, dim, eps)
        self.mlp = SwiGLU(dim, mlp_hidden, dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:  # x: (B, N, D)
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """x + SelfAttn(norm(x)), x + CrossAttn(norm(x), context), x + MLP(norm(x)).

    ``context_norm``: the context is normalised (a norm of this block) before its keys/values."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        qk_norm: bool = False,
        norm: Literal["layernorm", "rmsnorm"] = "layernorm",
        dropout: float = 0.0,
        eps: float = 1e-6,
        context_norm: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = build_norm(norm, dim, eps)
        self.context_norm = build_norm(norm, dim, eps) if context_norm else nn.Identity()
        self.self_attn = Attention(dim, num_heads, qk_norm=qk_norm, norm=norm, dropout=dropout, eps=eps)
        self.norm2 = build_norm(norm, dim, eps)
        self.cross_attn = Attention(dim, num_heads, cross=True, qk_norm=qk_norm, norm=norm, dropout=dropout, eps=eps)
        self.norm3 = build_norm(norm, dim, eps)
        self.mlp = SwiGLU(dim, mlp_hidden, dropout)

    def project_context(self, context: Tensor) -> KV:
        """Cross-attention keys/values (B, H, Ne, head_dim) of a context (B, Ne, D)."""
        return self.cross_attn.project_kv(self.context_norm(context))

    def forward(
        self,
        x: Tensor,  # (B, Nd, D)
        context: Tensor | None,  # (B, Ne, D) encoder output
        self_mask: Tensor | None = None,  # (B, 1, Nd, Nk) bool
        cross_mask: Tensor | None = None,  # (B, 1, 1 or Nd, Ne) bool
        self_past_kv: KV | None = None,
        cross_kv: KV | None = None,
        use_cache: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[KV, KV]]:
        """With ``use_cache`` also returns (self-attention keys/values, cross-attention keys/values)."""
        h, self_kv = self.self_attn(self.norm1(x), attn_mask=self_mask, past_kv=self_past_kv, use_cache=True)
        x = x + h
        if cross_kv is None and context is not None:
            cross_kv = self.project_context(context)
        h, cross_kv = self.cross_attn(self.norm2(x), None, attn_mask=cross_mask, past_kv=cross_kv, use_cache=True)
        x = x + h
        x = x + self.mlp(self.norm3(x))
        return (x, (self_kv, cross_kv)) if use_cache else x
