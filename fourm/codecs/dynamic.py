"""The dynamic image tokenizer as a sequence modality: :class:`DynamicImageCodec`, rgb images (H, W, 3)
uint8 <-> rows ``[pos p][code c] ... [EOS] [PAD] ...`` of a
:class:`tokenizers_zoo.image.dynamic_tokenizer.DynamicImageTokenizer` (``architecture: dynamic``,
``configs/modalities/extra/rgb_dynamic.yaml``; the layout in :mod:`tokenizers_zoo.image.dynamic_layout`)::

    codec = DynamicImageCodec("rgb_dynamic", ImageTokenizer.from_pretrained(path))
    ids = codec.encode([image])              # (1, max_length) ids, [EOS] after the last pair, then [PAD]s
    rows, lengths = codec.encode_unpadded([image])  # pre-tokenization: the ids up to [EOS]
    images = codec.decode(ids)               # [(H, W, 3) uint8], read leniently (generated rows)

The model generates it like a caption (autoregressive, [SOS] first, stopping at [EOS]); ids 0 ..
``num_reserved - 1`` are the text vocabulary's specials, so [SOS] / [EOS] / [PAD] are the same ids.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fourm.codecs.base import as_list, check_ids
from fourm.codecs.image import check_size
from fourm.codecs.values import load_image
from fourm.errors import FourmError
from fourm.utils.precision import bf16_autocast
from tokenizers_zoo.image.dynamic_layout import EOS_ID, PAD_ID, SOS_ID

MASK_ID = 4  # the text vocabulary's [MASK] ([UNK] = 3), a reserved id when num_reserved > 4


def _image_tokenizer_architecture(path: str | Path) -> str | None:
    """The ``architecture`` of the ``ImageTokenizer`` config at ``path/config.json``, None if it is not one."""
    try:
        data = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "format" in data or "modality" not in data:
        return None
    return data.get("architecture") if isinstance(data.get("architecture"), str) else None


def is_dynamic_tokenizer_dir(path: str | Path) -> bool:
    """True if ``path/config.json`` is a dynamic image tokenizer's config (``architecture: dynamic``)."""
    return _image_tokenizer_architecture(path) == "dynamic"


def is_image_tokenizer_dir(path: str | Path) -> bool:
    """True if ``path`` holds an ``ImageTokenizer`` of any architecture: behind a sequence modality it is
    read by :class:`DynamicImageCodec`, which refuses (one line) any but a dynamic one."""
    return _image_tokenizer_architecture(path) is not None


class DynamicImageCodec:
    """One rgb modality as a variable-length sequence; ``tokenizer`` is a ``DynamicImageTokenizer``."""

    kind = "sequence"

    def __init__(
        self, name: str, tokenizer: Any, precision: str = "auto", autocast: bool = True, resize: bool = True
    ) -> None:
        """``precision`` / ``autocast`` as :class:`~fourm.codecs.image.ImageCodec` (decoding runs in fp32);
        ``resize`` False: an image of another size than the tokenizer's is refused, not resized."""
        layout = getattr(tokenizer, "layout", None)
        if getattr(getattr(tokenizer, "cfg", None), "architecture", None) != "dynamic" or layout is None:
            got = getattr(getattr(tokenizer, "cfg", None), "architecture", type(tokenizer).__name__)
            raise FourmError(
                f"modality '{name}': expected a dynamic image tokenizer (architecture 'dynamic'), got {got!r}"
            )
        if tokenizer.modality != "rgb":
            raise FourmError(
                f"modality '{name}': expected a dynamic tokenizer of rgb images, got {tokenizer.modality!r}"
            )
        self.name, self.tokenizer, self.precision, self.autocast = name, tokenizer.eval(), precision, autocast
        self.resize, self.layout = resize, layout
        self.image_size: int = tokenizer.cfg.image_size
        self.length, self.vocab_size = tokenizer.max_length, tokenizer.vocab_size
        self.sos, self.eos, self.pad = SOS_ID, EOS_ID, PAD_ID
        reserved = layout.num_reserved
        self.mask_id: int | None = MASK_ID if reserved > MASK_ID else None
        # [S_0] .. [S_k]: the span sentinels, as in the text vocabulary
        self.sentinel_ids: list[int] = list(range(MASK_ID + 1, reserved))
        # ids never generated: every reserved id but [EOS] ([SOS], [PAD], [UNK], [MASK], span sentinels)
        self.banned: list[int] = [i for i in range(reserved) if i != EOS_ID]

    def normalize(self, value: Any) -> np.ndarray:
        """One raw image (array (H, W, 3), PIL image or path) -> uint8 (S, S, 3) at the tokenizer's size."""
        if not self.resize:
            check_size(self.name, value, self.image_size, 3)
        return load_image(value, "rgb", self.image_size)

    @torch.no_grad()
    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Images -> ids (B, length) long on the CPU: [pos][code] pairs by position, [EOS], [PAD]s."""
        if prefix:
            raise FourmError(
                f"'{self.name}' is an image: a partial {self.name} is given as token ids ([pos][code] pairs), not as a prefix"
            )
        arrays = [self.normalize(v) for v in as_list(values, self.name, 3)]
        x = self.tokenizer.preprocess(arrays).to(self.tokenizer.device)  # (B, 3, S, S)
        with bf16_autocast(x.device, self.precision) if self.autocast else contextlib.nullcontext():
            return self.tokenizer.encode(x).cpu()

    def encode_unpadded(self, values: Any) -> tuple[list[list[int]], list[int]]:
        """Images -> (per image its ids up to and including [EOS], per image that length): the
        interface of :meth:`fourm.codecs.SequenceCodec.encode_unpadded` (nothing is ever truncated)."""
        rows = []
        for row in self.encode(values).tolist():
            rows.append(row[: row.index(self.eos) + 1] if self.eos in row else row)
        return rows, [len(r) for r in rows]

    @torch.no_grad()
    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """Ids (B, L) -> one uint8 image (S, S, 3) per row, read leniently (a missing [EOS], stray ids
        and a [pos] without its [code] are skipped, see ``DynamicTokenLayout.unpack``); ``seed`` unused."""
        ids = check_ids(self.name, tokens, None)
        return list(self.tokenizer.postprocess(self.tokenizer.decode(ids)))
