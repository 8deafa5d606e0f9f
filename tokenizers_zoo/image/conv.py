"""ResNet-style convolutional encoder and decoder for image tokenizers.

GroupNorm + SiLU residual blocks, strided-conv downsampling and nearest-neighbour upsampling; no
attention, so a 64x64 image with a handful of 32-128 channel levels trains quickly on a CPU under
bf16 autocast. ``channel_mult`` has one entry per resolution level (``log2(downsample) + 1``).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


def num_groups(channels: int) -> int:
    """GroupNorm groups for ``channels``: up to 32, with at least 4 channels per group where possible."""
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0 and channels // groups >= 4:
            return groups
    return 1


class ResBlock(nn.Module):
    """Pre-norm residual block: (GroupNorm, SiLU, 3x3 conv) x 2 plus a (1x1 projected) skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(num_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C', H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling, then a 3x3 conv (may change channels)."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def level_channels(width: int, channel_mult: tuple[int, ...], downsample: int) -> list[int]:
    """Channels per resolution level; checks that ``channel_mult`` has ``log2(downsample) + 1`` entries."""
    levels = int(round(math.log2(downsample)))
    if 2**levels != downsample:
        raise ValueError(f"downsample must be a power of two, got {downsample}")
    if len(channel_mult) != levels + 1:
        raise ValueError(
            f"channel_mult needs {levels + 1} entries for downsample {downsample}, got {len(channel_mult)}"
        )
    return [width * m for m in channel_mult]


class ConvEncoder(nn.Module):
    """Image (B, C_in, H, W) -> latents (B, D, H/f, W/f) with f = ``downsample``."""

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        width: int = 32,
        channel_mult: tuple[int, ...] = (1, 2, 4, 4),
        num_res_blocks: int = 1,
        downsample: int = 8,
    ):
        super().__init__()
        chans = level_channels(width, channel_mult, downsample)
        self.conv_in = nn.Conv2d(in_channels, chans[0], 3, padding=1)
        blocks: list[nn.Module] = []
        ch = chans[0]
        for i, out_ch in enumerate(chans):
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, out_ch))
                ch = out_ch
            if i < len(chans) - 1:
                blocks.append(Downsample(ch))
        blocks.append(ResBlock(ch, ch))  # bottleneck block
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = nn.GroupNorm(num_groups(ch), ch)
        self.conv_out = nn.Conv2d(ch, latent_dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, D, h, w)
        h = self.blocks(self.conv_in(x))
        return self.conv_out(F.silu(self.norm_out(h)))


class ConvDecoder(nn.Module):
    """Latents (B, D, h, w) -> image-shaped output (B, C_out, h*f, w*f); ``last_layer`` is the output conv."""

    def __init__(
        self,
        out_channels: int,
        latent_dim: int,
        width: int = 32,
        channel_mult: tuple[int, ...] = (1, 2, 4, 4),
        num_res_blocks: int = 1,
        downsample: int = 8,
    ):
        super().__init__()
        chans = level_channels(width, channel_mult, downsample)
        ch = chans[-1]
        self.conv_in = nn.Conv2d(latent_dim, ch, 3, padding=1)
        blocks: list[nn.Module] = [ResBlock(ch, ch)]  # bottleneck block
        for i in reversed(range(len(chans))):
            blocks += [ResBlock(ch, ch) for _ in range(num_res_blocks)]
            if i > 0:  # upsample straight to the next level's (smaller) width: cheap at high resolution
                blocks.append(Upsample(ch, chans[i - 1]))
                ch = chans[i - 1]
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = nn.GroupNorm(num_groups(ch), ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    @property
    def last_layer(self) -> nn.Parameter:
        """Weight of the final layer (used for the VQGAN adaptive generator weight)."""
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:  # (B, D, h, w) -> (B, C_out, H, W)
        h = self.blocks(self.conv_in(z))
        return self.conv_out(F.silu(self.norm_out(h)))
