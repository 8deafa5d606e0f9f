"""Per-modality codecs: raw values <-> token ids with the modality's tokenizer.

* :class:`ImageCodec` (``ImageTokenizer``): arrays / PIL images / paths -> (B, N) ids; ids -> rgb uint8
  (H, W, 3), depth float32 (H, W) in [0, 1], semseg uint8 class ids (H, W), edges float32 (H, W) in {0, 1}.
* :class:`SequenceCodec` (shared ``TextTokenizer``): captions, boxes, palettes, metadata -> (B, L) ids
  ending in [EOS] and padded with [PAD] (a ``prefix`` has no [EOS]); ids -> values (lenient parsing,
  the groups that did not parse listed by ``decode_with_failures``).
* :class:`VectorCodec` (``VectorTokenizer``): float vectors (D,) <-> (B, K) ids.
* :class:`PatchCodec` (no tokenizer): images <-> pixel patches (B, N, P) uint8 of a patch modality
  (:mod:`fourm.core.patches`), the encoder input of e.g. ``rgb_pixels``.

Images are encoded under bf16 autocast where the device runs bf16 natively
(:mod:`fourm.utils.precision`, as pre-tokenization does, so tokens match the training data) and
decoded in fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fourm.errors import FourmError
from fourm.generation.values import load_image, parse_value
from fourm.utils.precision import bf16_autocast


def _as_list(values: Any, name: str, single_ndim: int | None = None) -> list:
    """A list of per-sample values; a numpy batch (one more dim than a single value) is split."""
    if single_ndim is not None and isinstance(values, np.ndarray) and values.ndim == single_ndim + 1:
        return list(values)
    if isinstance(values, (str, dict, np.ndarray, Image.Image)) or not isinstance(values, Sequence):
        raise FourmError(
            f"tokenize('{name}', values) expects a list of values (one per sample), got {type(values).__name__}"
        )
    if not values:
        raise FourmError(f"tokenize('{name}', values): the list of values is empty")
    return list(values)


def _check_ids(name: str, tokens: Any, vocab_size: int | None, length: int | None = None) -> Tensor:
    """Token ids (B, L) long on the CPU, checked against the vocabulary (if given) and length."""
    ids = torch.as_tensor(tokens.tokens if hasattr(tokens, "positions") else tokens).detach().cpu()
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise FourmError(f"{name}: expected integer token ids of shape (B, L), got {tuple(ids.shape)} {ids.dtype}")
    if length is not None and ids.shape[1] != length:
        raise FourmError(f"{name}: expected {length} tokens per sample, got {ids.shape[1]}")
    if vocab_size is not None and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise FourmError(f"{name}: token id {bad} out of range (expected 0..{vocab_size - 1})")
    return ids.long()


class ImageCodec:
    """One image modality; ``tokenizer`` is a :class:`tokenizers_zoo.image.ImageTokenizer`."""

    kind = "image"

    def __init__(self, name: str, tokenizer: Any, autocast: bool = True) -> None:
        self.name, self.tokenizer, self.autocast = name, tokenizer.eval(), autocast
        self.image_kind: str = tokenizer.modality
        self.image_size: int = tokenizer.cfg.image_size
        self.length, self.vocab_size = tokenizer.num_tokens, tokenizer.vocab_size

    def normalize(self, value: Any) -> np.ndarray:
        """One raw image (array, PIL or path) -> the schema array at the tokenizer's size."""
        return load_image(value, self.image_kind, self.image_size, self.tokenizer.cfg.num_classes)

    @torch.no_grad()
    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Images -> ids (B, N) long on the CPU (``prefix`` does not apply to images)."""
        if prefix:
            raise FourmError(f"'{self.name}' is an image: a partial image is given as token ids, not as a prefix")
        arrays = [self.normalize(v) for v in _as_list(values, self.name, 3 if self.image_kind in ("rgb", "normals") else 2)]
        x = self.tokenizer.preprocess(arrays).to(self.tokenizer.device)
        with bf16_autocast(x.device) if self.autocast else contextlib.nullcontext():
            return self.tokenizer.encode(x).cpu()

    @torch.no_grad()
    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """Ids (B, N) -> one schema image per row (edges as float32 in {0, 1})."""
        ids = _check_ids(self.name, tokens, self.vocab_size, self.length).to(self.tokenizer.device)
        generator = torch.Generator(device=ids.device).manual_seed(seed)
        images = self.tokenizer.postprocess(self.tokenizer.decode(ids, generator=generator))
        if self.image_kind == "edges":
            images = images.astype(np.float32)
        return list(images)


class SequenceCodec:
    """One sequence modality read and written with a :class:`tokenizers_zoo.text.TextTokenizer`."""

    kind = "sequence"

    def __init__(self, name: str, tokenizer: Any, max_length: int, text_kind: str | None = None) -> None:
        from tokenizers_zoo.text import MODALITIES

        self.name, self.tokenizer, self.length = name, tokenizer, max_length
        self.text_kind = text_kind or (name if name in MODALITIES else "caption")
        self.vocab_size: int = tokenizer.vocab_size
        self.sos, self.eos, self.pad = tokenizer.sos_id, tokenizer.eos_id, tokenizer.pad_id
        self._no_content = torch.tensor([*tokenizer.sentinel_ids, tokenizer.mask_id], dtype=torch.long)

    def normalize(self, value: Any) -> Any:
        """One raw value (strings parsed, see :mod:`fourm.generation.values`), checked by serialising it."""
        value = parse_value(self.text_kind, value)
        self.tokenizer.to_text(self.text_kind, value)  # FourmError for a malformed value
        return value

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Values -> ids (B, max_length) ending in [EOS], padded with [PAD] (too long: truncated).

        ``prefix``: no [EOS], and only the first n columns, n = the longest value."""
        vals = [self.normalize(v) for v in _as_list(values, self.name)]
        ids, lengths = self.tokenizer.encode_modality(
            self.text_kind, vals, self.length, add_eos=not prefix, truncation=True
        )
        return ids[:, : int(lengths.max())] if prefix else ids

    def decode(self, tokens: Any, seed: int = 0) -> list[Any]:
        """Ids (B, L) -> one value per row: stops at [EOS], ignores sentinels / [MASK], skips malformed
        groups of structured values (boxes, colours, metadata entries; see :meth:`decode_with_failures`)."""
        return self.decode_with_failures(tokens)[0]

    def decode_with_failures(self, tokens: Any) -> tuple[list[Any], list[list[dict[str, str]]]]:
        """Ids (B, L) -> (one value per row as :meth:`decode` gives it, per row the skipped groups as
        ``{"text": group text, "error": why it did not parse}``; empty lists when all parsed)."""
        from tokenizers_zoo.text import serializers

        ids = _check_ids(self.name, tokens, None)
        # ids the text vocabulary lacks, span sentinels and [MASK] carry no content in a whole sequence
        drop = (ids < 0) | (ids >= self.vocab_size) | torch.isin(ids, self._no_content)
        ids = torch.where(drop, self.pad, ids)
        cfg = self.tokenizer.config.structured
        values, failures = [], []
        for text in self.tokenizer.decode(ids):
            failed: list[tuple[str, str]] = []
            if self.text_kind == "bboxes":
                value: Any = serializers.text_to_bboxes(text, cfg.coord_bins, strict=False, failures=failed)
            elif self.text_kind == "color_palette":
                value = serializers.text_to_palette(
                    text, cfg.color_levels, cfg.max_palette_size, strict=False, failures=failed
                )
            elif self.text_kind == "metadata":
                value = serializers.text_to_metadata(text, cfg.metadata, strict=False, failures=failed)
            else:
                value = self.tokenizer.from_text(self.text_kind, text, strict=False)
            values.append(value)
            failures.append([{"text": t, "error": e} for t, e in failed])
        return values, failures


class VectorCodec:
    """One vector modality (a :class:`tokenizers_zoo.vector.VectorTokenizer`)."""

    kind = "vector"

    def __init__(self, name: str, tokenizer: Any) -> None:
        self.name, self.tokenizer = name, tokenizer.eval()
        self.length, self.vocab_size = tokenizer.num_tokens, tokenizer.vocab_size
        self.dim: int = tokenizer.cfg.input_dim

    def normalize(self, value: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != (self.dim,) or not np.isfinite(arr).all():
            raise FourmError(f"{self.name}: expected a finite vector of shape ({self.dim},), got {tuple(arr.shape)}")
        return arr

    @torch.no_grad()
    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        if prefix:
            raise FourmError(f"'{self.name}' is a vector: a partial vector is given as token ids, not as a prefix")
        x = torch.as_tensor(np.stack([self.normalize(v) for v in _as_list(values, self.name, 1)]))
        device = next(self.tokenizer.parameters()).device
        return self.tokenizer.encode(x.to(device)).cpu()

    @torch.no_grad()
    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        device = next(self.tokenizer.parameters()).device
        ids = _check_ids(self.name, tokens, self.vocab_size, self.length).to(device)
        return list(self.tokenizer.decode(ids).float().cpu().numpy())


class PatchCodec:
    """A patch modality (``patch_size`` in its registry spec): images cut into 8-bit pixel patches."""

    kind = "patches"
    tokenizer = None  # nothing to save in a bundle

    def __init__(self, name: str, spec: Any) -> None:
        from fourm.core.schema import IMAGE_LAYOUT

        if not spec.patch_size:
            raise FourmError(f"modality '{name}' is not a patch modality (no patch_size)")
        self.name, self.patch_size, self.channels = name, spec.patch_size, spec.channels
        self.image_kind = spec.data_key if spec.data_key in IMAGE_LAYOUT else "rgb"
        self.image_size, self.value_range, self.num_classes = spec.image_size, spec.value_range, spec.num_classes
        self.length, self.vocab_size, self.patch_dim = spec.num_tokens, spec.vocab_size, spec.patch_dim

    def normalize(self, value: Any) -> np.ndarray:
        """One raw image (array, PIL or path) -> the schema array at the modality's size."""
        return load_image(value, self.image_kind, self.image_size, self.num_classes)

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Images -> pixel patches (B, N, P) uint8."""
        from fourm.core.patches import patchify, to_levels

        if prefix:
            raise FourmError(f"'{self.name}' is a patch modality: it has no prefix")
        arrays = [self.normalize(v) for v in _as_list(values, self.name, 3 if self.channels > 1 else 2)]
        return torch.from_numpy(np.stack([patchify(to_levels(a, self.value_range), self.patch_size) for a in arrays]))

    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """Patches (B, N, P) (or flat (B, N * P)) -> one image per row, in the modality's value range."""
        from fourm.core.patches import from_levels, unpatchify

        values = tokens.values if hasattr(tokens, "positions") else tokens
        arr = torch.as_tensor(values).detach().cpu().numpy().reshape(-1, self.length, self.patch_dim)
        out = []
        for row in arr:
            image = unpatchify(row, self.patch_size, self.channels)
            out.append(from_levels(image[..., 0] if self.channels == 1 else image, self.value_range))
        return out


Codec = ImageCodec | SequenceCodec | VectorCodec | PatchCodec
