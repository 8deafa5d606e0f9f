"""Networks of the dynamic (LaVIT-style) image tokenizer: patch features, token selector, token merger, decoder.

    image (B, C, H, W) --conv stem + transformer--> patch features h (B, N, W), N = (H/p)(W/p)
    h --selector--> keep/drop logits (B, N, 2) --Gumbel-softmax, straight-through--> keep (B, N) in {0, 1}
    (h, keep) --merger--> one latent per kept patch (B, N, D) (rows of dropped patches are zero)
    kept latents --VQ--> codes;  (codes, positions) --decoder--> image

The selector is trained with hard 0/1 decisions in the forward pass and the Gumbel-softmax gradient
in the backward pass (:func:`gumbel_keep`); at inference a patch is kept when its keep probability
exceeds a threshold, so the number of tokens varies with the image. The merger folds every dropped
patch into the kept ones (:func:`merge_dropped`) before a few transformer blocks among kept tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from tokenizers_zoo.image.conv import ConvDecoder, ConvEncoder
from tokenizers_zoo.image.vit import Transformer


def gumbel_keep(logits: Tensor, temperature: float, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Hard straight-through keep decisions from [drop, keep] ``logits`` (..., 2).

    Returns (keep (...) exactly 0/1 in the forward pass with the gradient of the soft sample, the
    soft keep probability (...) of the Gumbel-perturbed sample). ``noise``: Gumbel noise (..., 2)
    (drawn when None).
    """
    if noise is None:
        u = torch.rand_like(logits, dtype=torch.float32).clamp(1e-9, 1.0 - 1e-9)
        noise = -torch.log(-torch.log(u))
    soft = ((logits.float() + noise) / temperature).softmax(dim=-1)  # (..., 2)
    hard = F.one_hot(soft.argmax(dim=-1), 2).to(soft.dtype)
    straight = hard + (soft - soft.detach())  # forward: exactly hard; backward: d soft
    return straight[..., 1], soft[..., 1]


def ensure_one_kept(keep: Tensor, score: Tensor) -> Tensor:
    """``keep`` (B, N) with the highest-``score`` patch switched on in rows that keep nothing."""
    empty = keep.detach().sum(dim=1) < 0.5  # (B,)
    if not bool(empty.any()):
        return keep
    force = F.one_hot(score.argmax(dim=1), keep.shape[1]).to(keep.dtype) * empty[:, None].to(keep.dtype)
    return keep + force * (1.0 - keep)


def top_k_mask(score: Tensor, k: int) -> Tensor:
    """(B, N) float mask with 1 at the ``k`` highest scores of every row."""
    idx = score.topk(min(k, score.shape[1]), dim=1).indices
    return torch.zeros_like(score, dtype=torch.float32).scatter_(1, idx, 1.0)


def merge_dropped(tokens: Tensor, values: Tensor, scores: Tensor, keep: Tensor) -> Tensor:
    """Fold dropped patches into kept tokens: (B, N, C) -> (B, N, C), rows of dropped patches zero.

    ``scores`` (B, N, N): affinity of kept token i (row) to patch j (column); ``keep`` (B, N) 0/1
    (straight-through values allowed). Dropped patch j splits ``values[j]`` among the kept tokens with
    weights ``softmax_i(scores[:, i, j])`` over kept i, so, with at least one kept token per image,
    ``sum_i out[i] == sum_kept tokens[i] + sum_dropped values[j]`` (mass is conserved).
    """
    kept = keep.detach() > 0.5  # (B, N)
    weights = scores.float().masked_fill(~kept[:, :, None], float("-inf")).softmax(dim=1)  # (B, N_i, N_j)
    weights = torch.nan_to_num(weights, nan=0.0)  # an image with no kept token: nothing to merge into
    drop = 1.0 - keep.float()  # (B, N), carries the selector's gradient
    merged = tokens.float() + torch.einsum("bij,bj,bjc->bic", weights, drop, values.float())
    return (merged * keep.float()[..., None]).to(tokens.dtype)


class MaskedBlock(nn.Module):
    """Pre-norm transformer block whose attention only reads the keys where ``key_mask`` (B, N) is true."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.num_heads = num_heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:  # (B, N, D), (B, N) bool
        q, k, v = rearrange(
            self.qkv(self.norm1(x)), "b n (three h d) -> three b h n d", three=3, h=self.num_heads
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])  # (B, h, N, d)
        x = x + self.proj(rearrange(out, "b h n d -> b n (h d)"))
        return x + self.mlp(self.norm2(x))


class DynamicEncoder(nn.Module):
    """Image (B, C_in, H, W) -> patch features (B, N, W): a conv stem per patch grid, then a transformer."""

    def __init__(self, in_channels: int, token_width: int, grid: int, depth: int, num_heads: int, **conv):
        super().__init__()
        self.stem = ConvEncoder(in_channels, token_width, **conv)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, token_width) * 0.02)
        self.transformer = Transformer(token_width, depth, num_heads)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, N, W)
        h = rearrange(self.stem(x), "b c h w -> b (h w) c") + self.pos
        return self.transformer(h)


class TokenSelector(nn.Module):
    """Patch features (B, N, W) -> [drop, keep] logits (B, N, 2)."""

    def __init__(self, token_width: int, init_keep: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(token_width),
            nn.Linear(token_width, token_width // 2 or 1),
            nn.GELU(),
            nn.Linear(token_width // 2 or 1, 2),
        )
        with torch.no_grad():  # start at keep probability init_keep
            self.net[-1].bias.copy_(torch.tensor([0.0, math.log(init_keep / (1 - init_keep))]))

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class TokenMerger(nn.Module):
    """(features (B, N, W), keep (B, N)) -> latents (B, N, D) of the kept patches (dropped rows: zero).

    :func:`merge_dropped` with learned query/key/value projections, then ``depth`` transformer
    blocks that attend among kept tokens only, then a projection to the quantiser's ``latent_dim``.
    """

    def __init__(self, token_width: int, latent_dim: int, depth: int, num_heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(token_width)
        self.query, self.key = nn.Linear(token_width, token_width), nn.Linear(token_width, token_width)
        self.value = nn.Linear(token_width, token_width)
        self.blocks = nn.ModuleList([MaskedBlock(token_width, num_heads) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(token_width)
        self.out = nn.Linear(token_width, latent_dim)

    def forward(self, h: Tensor, keep: Tensor) -> Tensor:  # (B, N, W), (B, N) -> (B, N, D)
        x = self.norm(h)
        scores = self.query(x) @ self.key(x).transpose(1, 2) / math.sqrt(x.shape[-1])  # (B, N, N)
        merged = merge_dropped(h, self.value(x), scores, keep)
        key_mask = keep.detach() > 0.5
        for block in self.blocks:
            merged = block(merged, key_mask)
        return self.out(self.norm_out(merged)) * keep[..., None].to(merged.dtype)


class DynamicDecoder(nn.Module):
    """(quantised latents (B, N, D), keep (B, N)) -> image-shaped output (B, C_out, H, W).

    Kept positions carry their latent, dropped ones a learned mask token; a transformer over all N
    positions spreads the kept information, and a conv decoder turns the (B, W, h, w) grid into pixels.
    """

    def __init__(
        self,
        out_channels: int,
        latent_dim: int,
        token_width: int,
        grid: int,
        depth: int,
        num_heads: int,
        **conv,
    ):
        super().__init__()
        self.grid = grid
        self.embed = nn.Linear(latent_dim, token_width)
        self.mask_token = nn.Parameter(torch.randn(1, 1, token_width) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, token_width) * 0.02)
        self.transformer = Transformer(token_width, depth, num_heads)
        self.conv = ConvDecoder(out_channels, token_width, **conv)

    @property
    def last_layer(self) -> nn.Parameter:
        return self.conv.last_layer

    def forward(self, z_q: Tensor, keep: Tensor) -> Tensor:
        k = keep[..., None].to(z_q.dtype)  # (B, N, 1)
        x = k * self.embed(z_q) + (1.0 - k) * self.mask_token + self.pos  # (B, N, W)
        x = self.transformer(x)
        return self.conv(rearrange(x, "b (h w) c -> b c h w", h=self.grid))
