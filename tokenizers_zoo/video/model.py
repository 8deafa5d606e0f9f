"""Space-time Transformer encoder and decoder of the joint image-video tokenizer (C-ViViT-like).

A clip (B, T, C, H, W) with T = 1 + G * tp frames becomes 1 + G frame groups of S = (H/p) * (W/p)
tokens each: group 0 is the first frame cut into p x p patches (as an image), group g >= 1 holds
frames 1 + (g-1)*tp .. g*tp cut into tp x p x p space-time patches. Every block attends over the S
tokens of a group (full spatial attention) and then, at each spatial position, causally over the
groups (a group sees itself and earlier groups only), so a group's output never depends on later
frames, and an image (T = 1) is exactly the first group of any clip that starts with it.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from tokenizers_zoo.image.vit import patchify, unpatchify


class SelfAttention(nn.Module):
    """Multi-head self-attention over the second-to-last axis; ``causal`` masks later positions."""

    def __init__(self, dim: int, num_heads: int, causal: bool):
        super().__init__()
        self.num_heads, self.causal = num_heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:  # (N, L, D) -> (N, L, D)
        q, k, v = rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.num_heads)
        # explicit softmax attention: sequences are short (S tokens, or 1 + G groups), where CPU
        # flash attention's backward is several times slower than two small batched matmuls
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (N, h, L, L)
        if self.causal:
            length = scores.shape[-1]
            later = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(later, float("-inf"))  # exact zeros after the softmax
        out = scores.softmax(dim=-1).to(v.dtype) @ v
        return self.proj(rearrange(out, "n h l d -> n l (h d)"))


class SpaceTimeBlock(nn.Module):
    """x + spatial_attn(ln(x)) within each group; x + causal temporal_attn(ln(x)) across groups; x + mlp."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm_s, self.spatial = nn.LayerNorm(dim), SelfAttention(dim, num_heads, causal=False)
        self.norm_t, self.temporal = nn.LayerNorm(dim), SelfAttention(dim, num_heads, causal=True)
        self.norm_m = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:  # (B, G, S, D)
        b, g, s, d = x.shape
        x = x + self.spatial(self.norm_s(x).reshape(b * g, s, d)).reshape(b, g, s, d)
        t = self.norm_t(x).transpose(1, 2).reshape(b * s, g, d)  # (B*S, G, D): one sequence per position
        x = x + self.temporal(t).reshape(b, s, g, d).transpose(1, 2)
        return x + self.mlp(self.norm_m(x))


class SpaceTimeTransformer(nn.Module):
    """Learned spatial (S) + temporal (groups) position embeddings, ``depth`` blocks, final LayerNorm."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, mlp_ratio: float, tokens_per_group: int, max_groups: int
    ):
        super().__init__()
        self.pos_space = nn.Parameter(torch.randn(1, 1, tokens_per_group, dim) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(1, max_groups, 1, dim) * 0.02)
        self.blocks = nn.ModuleList([SpaceTimeBlock(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:  # (B, G, S, D)
        x = x + self.pos_space + self.pos_time[:, : x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class VideoEncoder(nn.Module):
    """Clip (B, T, C, H, W), T = 1 + G * tp -> latents (B, 1 + G, S, latent_dim)."""

    def __init__(self, channels: int, latent_dim: int, image_size: int, patch: int, temporal_patch: int,
                 width: int, depth: int, num_heads: int, mlp_ratio: float, max_groups: int):  # fmt: skip
        super().__init__()
        self.patch, self.tp = patch, temporal_patch
        self.embed_image = nn.Linear(channels * patch * patch, width)
        self.embed_video = nn.Linear(temporal_patch * channels * patch * patch, width)
        self.transformer = SpaceTimeTransformer(
            width, depth, num_heads, mlp_ratio, (image_size // patch) ** 2, max_groups
        )
        self.out = nn.Linear(width, latent_dim)

    def forward(self, video: Tensor) -> Tensor:
        p = self.patch
        x = self.embed_image(patchify(video[:, 0], p))[:, None]  # (B, 1, S, D)
        if video.shape[1] > 1:
            rest = rearrange(
                video[:, 1:], "b (g t) c (h p) (w q) -> b g (h w) (t c p q)", t=self.tp, p=p, q=p
            )
            x = torch.cat([x, self.embed_video(rest)], dim=1)  # (B, 1 + G, S, D)
        return self.out(self.transformer(x))


class VideoDecoder(nn.Module):
    """Latents (B, 1 + G, S, latent_dim) -> clip (B, 1 + G * tp, C, H, W); the mirror of the encoder."""

    def __init__(self, channels: int, latent_dim: int, image_size: int, patch: int, temporal_patch: int,
                 width: int, depth: int, num_heads: int, mlp_ratio: float, max_groups: int):  # fmt: skip
        super().__init__()
        self.patch, self.tp, self.channels, self.grid = patch, temporal_patch, channels, image_size // patch
        self.embed = nn.Linear(latent_dim, width)
        self.transformer = SpaceTimeTransformer(width, depth, num_heads, mlp_ratio, self.grid**2, max_groups)
        self.head_image = nn.Linear(width, channels * patch * patch)
        self.head_video = nn.Linear(width, temporal_patch * channels * patch * patch)

    def forward(self, z: Tensor) -> Tensor:
        h = self.transformer(self.embed(z))  # (B, 1 + G, S, D)
        first = unpatchify(self.head_image(h[:, 0]), self.patch, self.grid, self.channels)[
            :, None
        ]  # (B, 1, C, H, W)
        if h.shape[1] == 1:
            return first
        rest = rearrange(self.head_video(h[:, 1:]), "b g (h w) (t c p q) -> b (g t) c (h p) (w q)",
                         h=self.grid, t=self.tp, c=self.channels, p=self.patch, q=self.patch)  # fmt: skip
        return torch.cat([first, rest], dim=1)
