"""One grid of a two-level image tokenizer as a modality: :class:`ImageLevelCodec` (``token_level``).

A VQ-VAE-2 tokenizer (``architecture: vqvae2``, :mod:`tokenizers_zoo.image.vqvae2`) gives a top and a
bottom grid per image, ``(B, N_top + N_bottom)`` ids with the top first. Registered as two
modalities (``configs/modalities/extra/rgb_top.yaml``, ``rgb_bottom.yaml``: ``token_level: top`` /
``bottom``, one tokenizer directory), each is an :class:`ImageLevelCodec` over the *same* tokenizer
object: ``encode`` keeps its own grid (the split), ``decode`` needs the other grid's ids too (the
join) and gives the picture both make::

    top = ImageLevelCodec("rgb_top", tok, "top"); bottom = ImageLevelCodec("rgb_bottom", tok, "bottom")
    bottom.decode(ids_b, levels={"top": ids_t})                   # one uint8 image per row
    decode_levels({"rgb_top": top, "rgb_bottom": bottom}, tokens)  # both, decoded once

Generate the top first (``--target rgb_top rgb_bottom``): the bottom codes were quantised given
the top ones. Codecs of one tokenizer may share a :class:`LevelEncodeCache`, so that encoding the
same batch for both levels (pre-tokenization) runs the encoder once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from fourm.codecs.base import check_ids
from fourm.codecs.image import ImageCodec
from fourm.errors import FourmError

LEVELS = ("top", "bottom")  # token order of a two-level tokenizer (tokenizers_zoo.image.vqvae2.LEVELS)


def level_sizes(tokenizer: Any) -> dict[str, int] | None:
    """{"top": N_top, "bottom": N_bottom} of a two-level tokenizer, None for a one-grid tokenizer."""
    sizes = getattr(getattr(tokenizer, "quantizer", None), "level_sizes", None)
    return dict(sizes) if sizes is not None else None


def split_levels(tokens: Tensor, sizes: Mapping[str, int]) -> dict[str, Tensor]:
    """Ids (B, N_top + N_bottom) -> {"top": (B, N_top), "bottom": (B, N_bottom)} (views, top first)."""
    total = sum(sizes[lv] for lv in LEVELS)
    if tokens.dim() != 2 or tokens.shape[1] != total:
        raise FourmError(f"expected two-level tokens of shape (B, {total}), got {tuple(tokens.shape)}")
    return dict(zip(LEVELS, tokens.split([sizes[lv] for lv in LEVELS], dim=1)))


def join_levels(levels: Mapping[str, Tensor], sizes: Mapping[str, int]) -> Tensor:
    """Inverse of :func:`split_levels`: {"top": (B, N_top), "bottom": (B, N_bottom)} -> (B, N_top + N_bottom)."""
    import torch

    for lv in LEVELS:
        if lv not in levels:
            raise FourmError(f"joining the levels needs '{lv}' tokens (got: {', '.join(levels) or 'none'})")
        t = levels[lv]
        if t.dim() != 2 or t.shape[1] != sizes[lv]:
            raise FourmError(f"expected {lv} tokens of shape (B, {sizes[lv]}), got {tuple(t.shape)}")
    if levels["top"].shape[0] != levels["bottom"].shape[0]:
        raise FourmError(
            f"top and bottom tokens differ in batch size: {levels['top'].shape[0]} vs {levels['bottom'].shape[0]}"
        )
    return torch.cat([levels[lv].long().cpu() for lv in LEVELS], dim=1)


class LevelEncodeCache:
    """The last batch a two-level tokenizer encoded, shared by its level codecs: the same raw value
    objects (compared by identity) give the stored ids instead of a second encoder run."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.tokens: Tensor | None = None

    def get(self, values: Sequence[Any]) -> Tensor | None:
        same = len(values) == len(self.values) and all(a is b for a, b in zip(values, self.values))
        return self.tokens if same else None

    def put(self, values: Sequence[Any], tokens: Tensor) -> None:
        self.values, self.tokens = list(values), tokens  # references keep the objects (and ids) alive


class ImageLevelCodec(ImageCodec):
    """The ``level`` grid ("top" / "bottom") of a two-level image tokenizer's tokens as one modality."""

    def __init__(
        self,
        name: str,
        tokenizer: Any,
        level: str,
        autocast: bool = True,
        precision: str = "auto",
        resize: bool = True,
        cache: LevelEncodeCache | None = None,
    ) -> None:
        """FourmError (one line) for a tokenizer with one grid or an unknown ``level``."""
        sizes = level_sizes(tokenizer)
        if sizes is None:
            arch = getattr(getattr(tokenizer, "cfg", None), "architecture", type(tokenizer).__name__)
            raise FourmError(
                f"modality '{name}' sets token_level '{level}', but its tokenizer ('{arch}') has one token grid, "
                "not top and bottom levels (use a vqvae2 tokenizer or drop token_level)"
            )
        if level not in LEVELS:
            raise FourmError(f"modality '{name}': unknown token_level '{level}' (known: {', '.join(LEVELS)})")
        super().__init__(name, tokenizer, autocast=autocast, precision=precision, resize=resize)
        self.level, self.sizes, self.cache = level, sizes, cache
        self.length = sizes[level]

    def split(self, tokens: Tensor) -> dict[str, Tensor]:
        """The tokenizer's ids (B, N_top + N_bottom) -> {"top": (B, N_top), "bottom": (B, N_bottom)}."""
        return split_levels(tokens, self.sizes)

    def join(self, levels: Mapping[str, Tensor]) -> Tensor:
        """{"top": ids, "bottom": ids} -> the tokenizer's ids (B, N_top + N_bottom), top first."""
        return join_levels(levels, self.sizes)

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Images -> this level's ids (B, N_level) long on the CPU."""
        if self.cache is None or prefix or not isinstance(values, list):
            return self.split(super().encode(values, prefix=prefix))[self.level].contiguous()
        tokens = self.cache.get(values)
        if tokens is None:
            tokens = super().encode(values)
            self.cache.put(values, tokens)
        return self.split(tokens)[self.level].contiguous()

    def decode(self, tokens: Any, seed: int = 0, levels: Mapping[str, Any] | None = None) -> list[np.ndarray]:
        """This level's ids (B, N_level) plus the other level's in ``levels`` ({"top": ids}) -> one image
        per row, decoded from both grids. FourmError (one line) without the other level."""
        ids = check_ids(self.name, tokens, self.vocab_size, self.length)
        other = next(lv for lv in LEVELS if lv != self.level)
        if not levels or levels.get(other) is None:
            raise FourmError(
                f"modality '{self.name}' is the {self.level} grid of a two-level tokenizer: decoding needs the "
                f"{other} grid's tokens too (generate both, e.g. targets rgb_top then rgb_bottom)"
            )
        partner = check_ids(f"{self.name} ({other} level)", levels[other], self.vocab_size, self.sizes[other])
        return self.decode_ids(self.join({self.level: ids, other: partner}), seed=seed)


def level_groups(codecs: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """modality -> {level: modality} of the level codecs sharing its tokenizer (object), for every
    :class:`ImageLevelCodec` among ``codecs``; FourmError if two modalities claim one level."""
    by_tok: dict[int, dict[str, str]] = {}
    for name, codec in codecs.items():
        if isinstance(codec, ImageLevelCodec):
            group = by_tok.setdefault(id(codec.tokenizer), {})
            if codec.level in group:
                raise FourmError(
                    f"modalities '{group[codec.level]}' and '{name}' are both the {codec.level} grid of one tokenizer"
                )
            group[codec.level] = name
    return {
        name: by_tok[id(codec.tokenizer)]
        for name, codec in codecs.items()
        if isinstance(codec, ImageLevelCodec)
    }


def check_level_partners(codecs: Mapping[str, Any], names: Sequence[str], available: Sequence[str]) -> None:
    """FourmError (one line) if a level modality among ``names`` is to be decoded while the other
    level of its tokenizer is not among ``available`` (conditions and targets)."""
    groups = level_groups(codecs)
    for name in names:
        if name not in groups:
            continue
        level = codecs[name].level
        other = next(lv for lv in LEVELS if lv != level)
        partner = groups[name].get(other)
        if partner is None or partner not in available:
            what = f"'{partner}'" if partner else f"a {other}-level modality of its tokenizer"
            raise FourmError(
                f"'{name}' is the {level} grid of a two-level tokenizer: decoding it needs {what} as a condition "
                "or target too (or decode=False)"
            )


def decode_levels(
    codecs: Mapping[str, Any], tokens: Mapping[str, Tensor], names: Sequence[str], seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """Decode the level modalities among ``names`` -> {modality: images}: per tokenizer, its grids in
    ``tokens`` joined and decoded once (both level modalities get the same pictures). A level whose
    other grid is not in ``tokens`` is left out (:func:`check_level_partners` refuses it instead)."""
    groups = level_groups(codecs)
    out: dict[str, list[np.ndarray]] = {}
    for name in names:
        if name not in groups or name in out:
            continue
        group = groups[name]
        if len(group) < len(LEVELS) or any(m not in tokens for m in group.values()):
            continue
        codec = codecs[name]
        levels = {lv: check_ids(m, tokens[m], codec.vocab_size, codec.sizes[lv]) for lv, m in group.items()}
        images = codec.decode_ids(codec.join(levels), seed=seed)
        for m in group.values():
            if m in names:
                out[m] = images
    return out


