"""Tiny image tokenizers for tests and demos: shipped configs shrunk to toy width, random inputs.

    tok = toy_tokenizer("rgb", image_size=32, seed=0)      # untrained, ~8-16 channels
    x = random_images(tok, n=2)
"""

from __future__ import annotations

from pathlib import Path

import torch

from fourm.resources import CONFIG_ROOT
from fourm.utils.config import apply_overrides, read_mapping
from tokenizers_zoo.image.config import ImageTokenizerConfig
from tokenizers_zoo.image.tokenizer import ImageTokenizer, build_image_tokenizer

CONFIG_DIR = CONFIG_ROOT / "tokenizers"


def toy_config(config: str | Path | dict, *overrides: str, image_size: int = 32) -> ImageTokenizerConfig:
    """A tokenizer config (path, shipped name like ``"rgb"``, or mapping) shrunk to ~8-16 channels.

    Architecture, quantiser kind and losses are kept; widths, depths, codebook (64 codes) and
    diffusion sampling steps (2) are reduced. ``overrides`` (``key=value``) are applied last.
    """
    if isinstance(config, dict):
        data = config
    else:
        path = Path(config)
        if not path.suffix:
            path = CONFIG_DIR / f"{path}.yaml"
        data = read_mapping(path)
    toy = [
        f"image_size={image_size}",
        "quantizer.dim=8",
        "gan.disc_width=8",
        "diffusion.block_out_channels=[8,16]",
        "diffusion.sample_steps=2",
    ]
    if data.get("architecture", "conv") in ("conv", "vqvae2"):
        levels = len(data.get("channel_mult", [1, 2, 4, 4]))
        toy += ["width=8", f"channel_mult={[1] * (levels - 1) + [2]}"]
    else:
        toy += ["width=16", "num_heads=2", "depth=1", "num_latent_tokens=8"]
    if data.get("quantizer", {}).get("kind", "vq") != "fsq":
        toy.append("quantizer.codebook_size=64")
    return ImageTokenizerConfig.from_dict(apply_overrides(data, toy + list(overrides)))


def toy_tokenizer(
    config: str | Path | dict = "rgb", *overrides: str, image_size: int = 32, seed: int = 0
) -> ImageTokenizer:
    """An untrained toy :class:`ImageTokenizer` (see :func:`toy_config`), seeded."""
    torch.manual_seed(seed)
    return build_image_tokenizer(toy_config(config, *overrides, image_size=image_size))


def random_images(tokenizer: ImageTokenizer, n: int = 2, seed: int = 0) -> torch.Tensor:
    """A random model-convention batch for ``tokenizer``'s modality."""
    g = torch.Generator().manual_seed(seed)
    size = tokenizer.cfg.image_size
    if tokenizer.modality == "semseg":
        return torch.randint(0, tokenizer.cfg.num_classes, (n, size, size), generator=g)
    if tokenizer.modality == "edges":
        return (torch.rand(n, 1, size, size, generator=g) > 0.8).float()
    return torch.rand(n, tokenizer.cfg.channels_in, size, size, generator=g) * 2 - 1
