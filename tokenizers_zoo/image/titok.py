"""1D image tokenizer networks (TiTok-style): K learned latent queries summarise the image.

Encoder: image patches and K learned latent tokens go through one ViT; the K latent outputs are
projected to ``latent_dim`` and returned as a (B, D, K) sequence (quantised along K). Decoder: the
K quantised latents plus one learned mask token per patch go through a ViT; the patch outputs are
projected to pixels. The token count K is independent of the image resolution.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from tokenizers_zoo.image.vit import Transformer, patchify, unpatchify


class TiTokEncoder(nn.Module):
    """Image (B, C_in, H, W) -> latent sequence (B, D, K)."""

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        image_size: int,
        patch: int,
        num_latent_tokens: int,
        width: int,
        depth: int,
        num_heads: int,
    ):
        super().__init__()
        self.patch, num_patches = patch, (image_size // patch) ** 2
        self.num_patches = num_patches
        self.embed = nn.Linear(in_channels * patch * patch, width)
        self.pos = nn.Parameter(torch.randn(1, num_patches, width) * 0.02)
        self.latent_queries = nn.Parameter(torch.randn(1, num_latent_tokens, width) * 0.02)
        self.transformer = Transformer(width, depth, num_heads)
        self.out = nn.Linear(width, latent_dim)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, D, K)
        patches = self.embed(patchify(x, self.patch)) + self.pos  # (B, P, W)
        queries = self.latent_queries.expand(x.shape[0], -1, -1)  # (B, K, W)
        h = self.transformer(torch.cat([patches, queries], dim=1))
        return rearrange(self.out(h[:, self.num_patches :]), "b k d -> b d k")


class TiTokDecoder(nn.Module):
    """Latent sequence (B, D, K) -> image-shaped output (B, C_out, H, W)."""

    def __init__(
        self,
        out_channels: int,
        latent_dim: int,
        image_size: int,
        patch: int,
        num_latent_tokens: int,
        width: int,
        depth: int,
        num_heads: int,
    ):
        super().__init__()
        self.patch, self.grid, self.out_channels = patch, image_size // patch, out_channels
        self.embed = nn.Linear(latent_dim, width)
        self.latent_pos = nn.Parameter(torch.randn(1, num_latent_tokens, width) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.patch_pos = nn.Parameter(torch.randn(1, self.grid**2, width) * 0.02)
        self.transformer = Transformer(width, depth, num_heads)
        self.head = nn.Linear(width, out_channels * patch * patch)

    @property
    def last_layer(self) -> nn.Parameter:
        return self.head.weight

    def forward(self, z: Tensor) -> Tensor:  # (B, D, K) -> (B, C_out, H, W)
        latents = self.embed(rearrange(z, "b d k -> b k d")) + self.latent_pos  # (B, K, W)
        masks = self.mask_token.expand(z.shape[0], self.grid**2, -1) + self.patch_pos  # (B, P, W)
        h = self.transformer(torch.cat([latents, masks], dim=1))
        return unpatchify(self.head(h[:, latents.shape[1] :]), self.patch, self.grid, self.out_channels)
