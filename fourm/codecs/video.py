"""Video modalities: :class:`VideoCodec`, clips (T, H, W, 3) uint8 <-> the ids of a joint image-video
tokenizer (:class:`tokenizers_zoo.video.VideoTokenizer`, ``configs/modalities/extra/video.yaml``).

A clip of the tokenizer's ``max_frames`` frames is ``(1 + G) * S`` ids, group-major (frame 0's S
image tokens first, then one group of S ids per ``temporal_patch`` frames). The model sees them as a
``vector`` modality (1D positions, decoded in parallel by MaskGIT): the FourM image kind needs a
square grid, and (1 + G) * S is not one (320 for 8 frames)::

    codec = VideoCodec("video", VideoTokenizer.from_pretrained(path))
    ids = codec.encode([clip])                     # (1, 320) for an (8, 64, 64, 3) clip
    clips = codec.decode(ids)                      # [(8, 64, 64, 3) uint8]
    first = codec.encode([frame0], prefix=True)    # (1, 64): the image tokens = ids[:, :64]

``prefix=True`` encodes the first frames of a clip (an image = one frame) to the ids of their whole
groups: the tokenizer is causal over groups, so they equal the start of the full clip's ids and can
be given as the known part of a ``video`` target (``pipe.generate(..., partial={"video": frame0})``,
``generate.py --prefix video=frame0.png``).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fourm.codecs.base import as_list, check_ids
from fourm.errors import FourmError
from fourm.utils.precision import bf16_autocast

VIDEO_CONFIG_KEYS = (
    "max_frames",
    "temporal_patch",
    "patch",
)  # a VideoTokenizerConfig's config.json has these


def is_video_tokenizer_dir(path: str | Path) -> bool:
    """True if ``path/config.json`` is a :class:`tokenizers_zoo.video.VideoTokenizer`'s config."""
    try:
        data = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "format" not in data and all(k in data for k in VIDEO_CONFIG_KEYS)


def load_video_tokenizer(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """The :class:`~tokenizers_zoo.video.VideoTokenizer` saved at ``path``."""
    from tokenizers_zoo.video.tokenizer import VideoTokenizer

    return VideoTokenizer.from_pretrained(path, device=device)


def read_frames(path: str | Path) -> np.ndarray:
    """A picture file -> uint8 frames (T, H, W, 3): every frame of an animated GIF, one of a PNG."""
    try:
        with Image.open(path) as im:
            frames = []
            for k in range(getattr(im, "n_frames", 1)):
                im.seek(k)
                frames.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    except (OSError, ValueError) as e:
        raise FourmError(f"cannot read frames from {path}: {e}") from None
    return np.stack(frames)


class VideoCodec:
    """One video modality; ``tokenizer`` is a :class:`tokenizers_zoo.video.VideoTokenizer`."""

    kind = "vector"  # the model's kind: 1D positions, parallel decoding (see the module docstring)

    def __init__(self, name: str, tokenizer: Any, precision: str = "auto", autocast: bool = True) -> None:
        """``precision``: encode under bf16 autocast where the device runs it natively (``auto``), or as
        given (``bf16`` / ``fp32``); ``autocast`` False: always fp32. Decoding runs in fp32."""
        self.name, self.tokenizer, self.precision, self.autocast = name, tokenizer.eval(), precision, autocast
        self.frames: int = tokenizer.cfg.max_frames
        self.image_size: int = tokenizer.cfg.image_size
        self.length, self.vocab_size = tokenizer.num_tokens, tokenizer.vocab_size

    def _fail(self, what: str, got: Any) -> FourmError:
        s = self.image_size
        return FourmError(
            f"modality '{self.name}': expected {what} of shape ({self.frames}, {s}, {s}, 3), got {got}"
        )

    def normalize(self, value: Any) -> np.ndarray:
        """One raw clip (array (T, H, W, 3), a list of frames, a GIF path) or a first frame (an image
        (H, W, 3) or a PNG path, for ``prefix``) -> uint8 frames (t, H, W, 3), 1 <= t <= frames.
        FourmError (one line) for another frame size or more frames; never resized."""
        if isinstance(value, (str, Path)):
            value = read_frames(value)
        elif isinstance(value, Image.Image):
            value = np.asarray(value.convert("RGB"))
        a = np.asarray(value)
        if a.ndim == 3:
            a = a[None]
        s = self.image_size
        if a.ndim != 4 or a.shape[1:] != (s, s, 3) or not 1 <= a.shape[0] <= self.frames:
            raise self._fail("a clip (or its first frames)", f"{a.dtype} {tuple(a.shape)}")
        if a.dtype != np.uint8:
            if not np.issubdtype(a.dtype, np.number) or a.min() < 0 or a.max() > 255:
                raise FourmError(f"modality '{self.name}': expected uint8 frames (0..255), got {a.dtype}")
            a = np.rint(a).astype(np.uint8)
        return np.ascontiguousarray(a)

    def prefix_groups(self, num_frames: int) -> int:
        """Whole token groups of a clip's first ``num_frames`` frames: 1 (frame 0) + one per
        ``temporal_patch`` further frames."""
        return 1 + (num_frames - 1) // self.tokenizer.cfg.temporal_patch

    @torch.no_grad()
    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Clips -> ids (B, length) long on the CPU. ``prefix``: first frames of clips (one count for
        the batch) -> the ids of their whole groups (B, k * S), the start of the full clips' ids."""
        arrays = [self.normalize(v) for v in as_list(values, self.name, 4)]
        counts = {a.shape[0] for a in arrays}
        if not prefix and counts != {self.frames}:
            got = ", ".join(str(n) for n in sorted(counts))
            raise self._fail("clips", f"{got} frames (a clip's first frames are given as a prefix)")
        if len(counts) > 1:
            raise FourmError(
                f"modality '{self.name}': prefixes of one batch must have one frame count, got {sorted(counts)}"
            )
        t = counts.pop()
        # a prefix keeps the frames of its whole groups (a group's tokens depend on all its frames)
        keep = 1 + (self.prefix_groups(t) - 1) * self.tokenizer.cfg.temporal_patch if prefix else t
        x = self.tokenizer.preprocess(np.stack([a[:keep] for a in arrays])).to(
            self.tokenizer.device
        )  # (B, T, 3, H, W)
        with bf16_autocast(x.device, self.precision) if self.autocast else contextlib.nullcontext():
            return self.tokenizer.encode(x).cpu()

    @torch.no_grad()
    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """Ids (B, length) -> one uint8 clip (frames, H, W, 3) per row (``seed`` unused: decoding is
        deterministic)."""
        ids = check_ids(self.name, tokens, self.vocab_size, self.length).to(self.tokenizer.device)
        return list(self.tokenizer.postprocess(self.tokenizer.decode(ids, num_frames=self.frames)))
