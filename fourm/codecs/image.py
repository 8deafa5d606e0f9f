"""Image modalities: :class:`ImageCodec` (an ``ImageTokenizer``) and :class:`PatchCodec` (8-bit pixel
patches, no tokenizer)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fourm.codecs.base import as_list, check_ids
from fourm.codecs.values import load_image
from fourm.core.image_kinds import IMAGE_KINDS
from fourm.core.patches import from_levels, patchify, to_levels, unpatchify
from fourm.errors import FourmError
from fourm.utils.precision import bf16_autocast


def check_size(name: str, value: Any, size: int, channels: int) -> None:
    """FourmError unless the image ``value`` (an array or PIL image) is ``size`` x ``size``: what a codec
    built with ``resize=False`` asks (pre-tokenization, whose raw data import sized already)."""
    shape = (value.height, value.width) if isinstance(value, Image.Image) else tuple(np.shape(value))
    if shape[:2] != (size, size):
        want = (size, size, channels) if channels > 1 else (size, size)
        raise FourmError(
            f"modality '{name}': expected an image of shape {want} (image_size x image_size, channels), got {shape}"
        )


class ImageCodec:
    """One image modality; ``tokenizer`` is a :class:`tokenizers_zoo.image.ImageTokenizer`."""

    kind = "image"

    def __init__(
        self, name: str, tokenizer: Any, autocast: bool = True, precision: str = "auto", resize: bool = True
    ) -> None:
        """``autocast`` False: always fp32; else ``precision`` (:func:`fourm.utils.precision.bf16_autocast`):
        ``auto`` bf16 autocast where the device runs it natively, ``bf16`` / ``fp32`` as given.
        ``resize`` False: an image of another size than the tokenizer's is refused, not resized."""
        self.name, self.tokenizer, self.autocast, self.precision = name, tokenizer.eval(), autocast, precision
        self.resize = resize
        self.image_kind: str = tokenizer.modality
        self.image_size: int = tokenizer.cfg.image_size
        self.length, self.vocab_size = tokenizer.num_tokens, tokenizer.vocab_size

    def normalize(self, value: Any) -> np.ndarray:
        """One raw image (array, PIL or path) -> the schema array at the tokenizer's size."""
        if not self.resize:
            check_size(self.name, value, self.image_size, IMAGE_KINDS[self.image_kind].channels)
        return load_image(value, self.image_kind, self.image_size, self.tokenizer.cfg.num_classes)

    @torch.no_grad()
    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Images -> ids (B, N) long on the CPU (``prefix`` does not apply to images)."""
        if prefix:
            raise FourmError(f"'{self.name}' is an image: a partial image is given as token ids, not as a prefix")
        arrays = [self.normalize(v) for v in as_list(values, self.name, IMAGE_KINDS[self.image_kind].ndim)]
        x = self.tokenizer.preprocess(arrays).to(self.tokenizer.device)
        with bf16_autocast(x.device, self.precision) if self.autocast else contextlib.nullcontext():
            return self.tokenizer.encode(x).cpu()

    @torch.no_grad()
    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """Ids (B, N) -> one schema image per row (edges as float32 in {0, 1})."""
        return self.decode_ids(check_ids(self.name, tokens, self.vocab_size, self.length), seed)

    @torch.no_grad()
    def decode_ids(self, ids: Tensor, seed: int = 0) -> list[np.ndarray]:
        """Checked ids (B, tokenizer.num_tokens) -> one schema image per row (see :meth:`decode`)."""
        ids = ids.to(self.tokenizer.device)
        generator = torch.Generator(device=ids.device).manual_seed(seed)
        images = self.tokenizer.postprocess(self.tokenizer.decode(ids, generator=generator))
        if IMAGE_KINDS[self.image_kind].binary:
            images = images.astype(np.float32)
        return list(images)


class PatchCodec:
    """A patch modality (``patch_size`` in its registry spec): images cut into 8-bit pixel patches."""

    kind = "patches"
    tokenizer = None  # nothing to save in a bundle

    def __init__(self, name: str, spec: Any, resize: bool = True) -> None:
        """``resize`` False: an image of another size than ``spec.image_size`` is refused, not resized."""
        if not spec.patch_size:
            raise FourmError(f"modality '{name}' is not a patch modality (no patch_size)")
        self.name, self.patch_size, self.channels = name, spec.patch_size, spec.channels
        self.image_kind = spec.data_key if spec.data_key in IMAGE_KINDS else "rgb"
        self.image_size, self.value_range, self.num_classes = spec.image_size, spec.value_range, spec.num_classes
        self.length, self.vocab_size, self.patch_dim = spec.num_tokens, spec.vocab_size, spec.patch_dim
        self.resize = resize

    def normalize(self, value: Any) -> np.ndarray:
        """One raw image (array, PIL or path) -> the schema array at the modality's size."""
        if not self.resize:
            check_size(self.name, value, self.image_size, self.channels)
        return load_image(value, self.image_kind, self.image_size, self.num_classes)

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Images -> pixel patches (B, N, P) uint8."""
        if prefix:
            raise FourmError(f"'{self.name}' is a patch modality: it has no prefix")
        arrays = [self.normalize(v) for v in as_list(values, self.name, 3 if self.channels > 1 else 2)]
        return torch.from_numpy(np.stack([patchify(to_levels(a, self.value_range), self.patch_size) for a in arrays]))

    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """Patches (B, N, P) (or flat (B, N * P)) -> one image per row, in the modality's value range."""
        values = tokens.values if hasattr(tokens, "positions") else tokens
        arr = torch.as_tensor(values).detach().cpu().numpy().reshape(-1, self.length, self.patch_dim)
        out = []
        for row in arr:
            image = unpatchify(row, self.patch_size, self.channels)
            out.append(from_levels(image[..., 0] if self.channels == 1 else image, self.value_range))
        return out
