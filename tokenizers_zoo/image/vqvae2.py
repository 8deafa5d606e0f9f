"""Two-level VQ-VAE-2 bottleneck (Razavi et al. 2019): a top and a bottom codebook over one conv encoder.

``architecture: vqvae2`` in an image tokenizer config puts :class:`VQVAE2Bottleneck` where a
single-level tokenizer has its quantiser. The tokenizer's conv encoder is the *bottom encoder*
(image -> features on the bottom grid, e.g. 64x64 -> 8x8); this module adds the rest::

    h_b (B, D, h, w) --top encoder--> z_t (B, D, h/s, w/s) --top VQ--> q_t        (s = top_downsample)
    q_t --top decoder--> c (B, D, h, w);  fuse([h_b, c]) --bottom VQ--> q_b       (bottom given the top)
    z_q = [q_b, upsample(q_t)] (B, 2D, h, w) -> the tokenizer's conv decoder -> image

Tokens: ``(B, N_top + N_bottom)``, the top grid row-major first, then the bottom grid row-major;
both levels use ids ``0..codebook_size-1`` of their own codebook (see :data:`LEVELS` and
:func:`split_levels` / :func:`join_levels`). Decoding needs both grids; generating top, then bottom
given the top, is the natural order (``--target rgb_top rgb_bottom``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fourm.errors import FourmError
from tokenizers_zoo.image.conv import Downsample, ResBlock, Upsample, num_groups
from tokenizers_zoo.quantizers import (
    CodebookUsage,
    Quantizer,
    QuantizerConfig,
    QuantizerOutput,
    build_quantizer,
)

LEVELS = ("top", "bottom")  # order of the two grids in a token row


class TopEncoder(nn.Module):
    """Bottom features (B, D, h, w) -> top latents (B, D, h/s, w/s): s/2 x (stride-2 conv), res-block."""

    def __init__(self, dim: int, channels: int, downsample: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(dim, channels, 3, padding=1)]
        layers += [Downsample(channels) for _ in range(int(math.log2(downsample)))]
        layers += [ResBlock(channels, channels), nn.GroupNorm(num_groups(channels), channels), nn.SiLU()]
        layers.append(nn.Conv2d(channels, dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class TopDecoder(nn.Module):
    """Top codes (B, D, h/s, w/s) -> bottom-grid features (B, D_out, h, w): res-block, s/2 x upsample."""

    def __init__(self, dim: int, channels: int, upsample: int, out_dim: int, res_block: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(dim, channels, 3, padding=1)]
        if res_block:
            layers.append(ResBlock(channels, channels))
        layers += [Upsample(channels) for _ in range(int(math.log2(upsample)))]
        layers += [nn.GroupNorm(num_groups(channels), channels), nn.SiLU(), nn.Conv2d(channels, out_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, q: Tensor) -> Tensor:
        return self.net(q)


class VQVAE2Bottleneck(Quantizer):
    """Bottom features (B, dim, h, w) -> two code grids; ``z_q`` is (B, 2 * dim, h, w) for the decoder.

    ``forward`` returns ``indices`` (B, N_top + N_bottom) (top first) and ``loss`` = top VQ loss +
    bottom VQ loss; ``indices_to_latents`` inverts it. ``quantize_levels`` exposes both levels (and
    lets a caller impose the top codes) for inspection and tests.
    """

    def __init__(
        self,
        quantizer: QuantizerConfig,
        bottom_grid: tuple[int, int],
        top_downsample: int = 2,  # top grid = bottom grid / top_downsample (VQ-VAE-2 uses 2: 32x32 / 64x64)
        channels: int = 128,  # width of the top encoder / decoder convs
    ):
        super().__init__()
        if quantizer.kind != "vq":
            raise FourmError(f"architecture 'vqvae2' needs quantizer kind 'vq', got '{quantizer.kind}'")
        h, w = bottom_grid
        if top_downsample < 2 or 2 ** int(math.log2(top_downsample)) != top_downsample:
            raise FourmError(f"top_downsample must be a power of two >= 2, got {top_downsample}")
        if h % top_downsample or w % top_downsample:
            raise FourmError(f"top_downsample {top_downsample} does not divide the bottom grid {h}x{w}")
        self.top = build_quantizer(quantizer)
        self.bottom = build_quantizer(quantizer)
        self.dim = dim = self.bottom.dim
        self.out_dim = 2 * dim
        self.codebook_size = self.bottom.codebook_size
        self.bottom_grid = (h, w)
        self.top_grid = (h // top_downsample, w // top_downsample)
        self.top_encoder = TopEncoder(dim, channels, top_downsample)
        self.top_decoder = TopDecoder(dim, channels, top_downsample, dim)  # conditions the bottom quantiser
        self.fuse = nn.Conv2d(2 * dim, dim, 1)  # [bottom features, decoded top] -> bottom VQ input
        self.top_upsample = TopDecoder(
            dim, dim, top_downsample, dim, res_block=False
        )  # top codes for the decoder

    @property
    def level_sizes(self) -> dict[str, int]:
        """Tokens per level, in token order: {"top": N_top, "bottom": N_bottom}."""
        return {"top": math.prod(self.top_grid), "bottom": math.prod(self.bottom_grid)}

    @property
    def num_tokens(self) -> int:
        return sum(self.level_sizes.values())

    def quantize_levels(
        self, h_b: Tensor, top_indices: Tensor | None = None
    ) -> tuple[QuantizerOutput, QuantizerOutput, Tensor]:
        """(top output, bottom output, bottom VQ input) for bottom features ``h_b`` (B, dim, h, w).

        ``top_indices`` (B, h/s, w/s): use these top codes instead of quantising the top encoder's
        output (the top output's loss is then zero); the bottom is quantised given them.
        """
        self.check_input(h_b)
        if tuple(h_b.shape[-2:]) != self.bottom_grid:
            raise FourmError(
                f"vqvae2 expects bottom features on a {self.bottom_grid} grid, got {tuple(h_b.shape)}"
            )
        if top_indices is None:
            top = self.top(self.top_encoder(h_b))
        else:
            z_t = self.top.indices_to_latents(top_indices).to(h_b.dtype)
            zero = torch.zeros((), device=h_b.device)
            top = QuantizerOutput(z_q=z_t, indices=top_indices.long(), loss=zero)
        cond = self.top_decoder(top.z_q.to(h_b.dtype))
        bottom_in = self.fuse(torch.cat([h_b, cond.to(h_b.dtype)], dim=1))
        bottom = self.bottom(bottom_in)
        return top, bottom, bottom_in

    def _decoder_latents(self, q_t: Tensor, q_b: Tensor) -> Tensor:
        """[q_b, upsample(q_t)]: (B, 2 * dim, h, w), in the dtype of the upsampler's output."""
        up = self.top_upsample(q_t)
        return torch.cat([q_b.to(up.dtype), up], dim=1)

    def forward(self, z: Tensor) -> QuantizerOutput:
        top, bottom, _ = self.quantize_levels(z)
        b = z.shape[0]
        indices = torch.cat([top.indices.reshape(b, -1), bottom.indices.reshape(b, -1)], dim=1)
        metrics = {
            f"{name}_{k}": v for name, q in (("top", top), ("bottom", bottom)) for k, v in q.metrics.items()
        }
        z_q = self._decoder_latents(top.z_q.to(z.dtype), bottom.z_q)
        return QuantizerOutput(z_q=z_q, indices=indices, loss=top.loss + bottom.loss, metrics=metrics)

    def indices_to_latents(self, indices: Tensor) -> Tensor:
        """(B, N_top + N_bottom) long -> decoder latents (B, 2 * dim, h, w)."""
        if indices.dim() != 2 or indices.shape[1] != self.num_tokens:
            raise FourmError(
                f"vqvae2 expects indices of shape (B, {self.num_tokens}), got {tuple(indices.shape)}"
            )
        n_top = self.level_sizes["top"]
        b = indices.shape[0]
        q_t = self.top.indices_to_latents(indices[:, :n_top].reshape(b, *self.top_grid))
        q_b = self.bottom.indices_to_latents(indices[:, n_top:].reshape(b, *self.bottom_grid))
        return self._decoder_latents(q_t, q_b)

    def extra_repr(self) -> str:
        return f"top_grid={self.top_grid}, bottom_grid={self.bottom_grid}, codebook_size={self.codebook_size}"


def has_levels(tokenizer: nn.Module) -> bool:
    """True for a tokenizer whose tokens are a top and a bottom grid (``architecture: vqvae2``)."""
    return isinstance(getattr(tokenizer, "quantizer", None), VQVAE2Bottleneck)


def _level_sizes(tokenizer: nn.Module) -> dict[str, int]:
    sizes = getattr(tokenizer.quantizer, "level_sizes", None)
    if sizes is None:
        raise FourmError(
            f"tokenizer '{tokenizer.cfg.architecture}' has one token grid, not top and bottom levels"
        )
    return sizes


def split_levels(tokenizer: nn.Module, tokens: Tensor) -> dict[str, Tensor]:
    """A vqvae2 tokenizer's tokens (B, N_top + N_bottom) -> {"top": (B, N_top), "bottom": (B, N_bottom)}."""
    sizes = _level_sizes(tokenizer)
    if tokens.dim() != 2 or tokens.shape[1] != sum(sizes.values()):
        raise FourmError(f"expected tokens of shape (B, {sum(sizes.values())}), got {tuple(tokens.shape)}")
    return dict(zip(LEVELS, tokens.split([sizes[name] for name in LEVELS], dim=1)))


def join_levels(tokenizer: nn.Module, top: Tensor, bottom: Tensor) -> Tensor:
    """Inverse of :func:`split_levels`: (B, N_top) and (B, N_bottom) -> (B, N_top + N_bottom) for decode."""
    sizes = _level_sizes(tokenizer)
    for name, t in (("top", top), ("bottom", bottom)):
        if t.dim() != 2 or t.shape[1] != sizes[name]:
            raise FourmError(f"expected {name} tokens of shape (B, {sizes[name]}), got {tuple(t.shape)}")
    if top.shape[0] != bottom.shape[0]:
        raise FourmError(f"top and bottom tokens differ in batch size: {top.shape[0]} vs {bottom.shape[0]}")
    return torch.cat([top, bottom], dim=1).long()


class LevelUsage:
    """Codebook usage of each level over an eval set: ``update(tokens)`` per batch, then ``metrics()``."""

    def __init__(self, tokenizer: nn.Module):
        self.tokenizer = tokenizer
        self.counters = {name: CodebookUsage(tokenizer.vocab_size) for name in LEVELS}

    def update(self, tokens: Tensor) -> None:
        """Add a batch of tokens (B, N_top + N_bottom)."""
        for name, ids in split_levels(self.tokenizer, tokens).items():
            self.counters[name].update(ids)

    def metrics(self) -> dict[str, float]:
        """``usage_top`` / ``usage_bottom`` (% of each codebook used) and ``perplexity_top`` / ``_bottom``."""
        out: dict[str, float] = {}
        for name, usage in self.counters.items():
            out[f"usage_{name}"] = 100.0 * usage.usage()
            out[f"perplexity_{name}"] = usage.perplexity()
        return out
