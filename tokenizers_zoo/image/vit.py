"""Vision-Transformer encoder and decoder for image tokenizers (one latent per ``patch x patch`` patch).

The encoder patchifies the image, runs pre-norm Transformer blocks and projects every patch to a
``latent_dim`` vector laid out as a (B, D, h, w) grid; the decoder maps such a grid back to pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head self-attention using ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, D) -> (B, N, D)
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:  # (B, N, D)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of ``depth`` blocks followed by a final LayerNorm."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def patchify(images: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) -> (B, (H/p)*(W/p), C*p*p), patches in row-major order."""
    return rearrange(images, "b c (h p) (w q) -> b (h w) (c p q)", p=patch, q=patch)


def unpatchify(patches: Tensor, patch: int, grid: int, channels: int) -> Tensor:
    """Inverse of :func:`patchify` for a square ``grid`` x ``grid`` layout."""
    return rearrange(
        patches, "b (h w) (c p q) -> b c (h p) (w q)", h=grid, w=grid, c=channels, p=patch, q=patch
    )


class ViTEncoder(nn.Module):
    """Image (B, C_in, H, W) -> latents (B, D, H/p, W/p)."""

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        image_size: int,
        patch: int,
        width: int,
        depth: int,
        num_heads: int,
    ):
        super().__init__()
        self.patch, self.grid = patch, image_size // patch
        self.embed = nn.Linear(in_channels * patch * patch, width)
        self.pos = nn.Parameter(torch.randn(1, self.grid**2, width) * 0.02)
        self.transformer = Transformer(width, depth, num_heads)
        self.out = nn.Linear(width, latent_dim)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, D, h, w)
        h = self.transformer(self.embed(patchify(x, self.patch)) + self.pos)
        return rearrange(self.out(h), "b (h w) d -> b d h w", h=self.grid)


class ViTDecoder(nn.Module):
    """Latents (B, D, h, w) -> image-shaped output (B, C_out, h*p, w*p); ``last_layer`` is the pixel head."""

    def __init__(
        self,
        out_channels: int,
        latent_dim: int,
        image_size: int,
        patch: int,
        width: int,
        depth: int,
        num_heads: int,
    ):
        super().__init__()
        self.patch, self.grid, self.out_channels = patch, image_size // patch, out_channels
        self.embed = nn.Linear(latent_dim, width)
        self.pos = nn.Parameter(torch.randn(1, self.grid**2, width) * 0.02)
        self.transformer = Transformer(width, depth, num_heads)
        self.head = nn.Linear(width, out_channels * patch * patch)

    @property
    def last_layer(self) -> nn.Parameter:
        return self.head.weight

    def forward(self, z: Tensor) -> Tensor:  # (B, D, h, w) -> (B, C_out, H, W)
        h = self.transformer(self.embed(rearrange(z, "b d h w -> b (h w) d")) + self.pos)
        return unpatchify(self.head(h), self.patch, self.grid, self.out_channels)
