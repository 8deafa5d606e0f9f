"""The codecs of a converted ml-4m model: :class:`Ml4mSequenceCodec` (ml-4m's WordPiece text) and
:class:`Ml4mImageCodec` (ml-4m's VQ-VAE / DiVAE image tokenizers)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fourm.codecs.base import as_list, check_ids
from fourm.codecs.sequence import SequenceCodec
from fourm.codecs.values import load_image, parse_value
from fourm.core.image_kinds import IMAGE_KINDS
from fourm.errors import FourmError
from tokenizers_zoo.image.ml4m_divae import Ml4mDiVAE
from tokenizers_zoo.text.ml4m_wordpiece import MAX_TOKENS, MODALITIES


def _looks_serialised(text: str) -> bool:
    """Whether a det / palette / metadata string is already ml-4m's text (``v0=12 v1=...``)."""
    words = text.split()
    return bool(words) and re.fullmatch(r"v[0-3]=\d+", words[0]) is not None


class Ml4mSequenceCodec(SequenceCodec):
    """One sequence modality of a converted ml-4m model, read and written with ml-4m's WordPiece
    vocabulary (:class:`tokenizers_zoo.text.ml4m_wordpiece.Ml4mTextTokenizer`).

    Values: ``caption`` (and ``human_poses`` / ``sam_instance``, given as their text) a string;
    ``det`` a list of ``{"box": [x0, y0, x1, y1], "label": str}`` (or the string ``"dog 0.1 0.2 0.5 0.8;
    ..."``); ``color_palette`` ``[(r, g, b), ...]`` (or ``"255 0 0; 0 0 255"``); ``metadata`` a dict of
    ml-4m's keys (or ``"brightness=120, n_humans=2"``). A string that starts with a value token
    (``v0=...``) is taken as ml-4m's serialised text. Ids are exactly what ml-4m feeds its model for
    the whole value (:meth:`Ml4mTextTokenizer.sequence_ids`: ids, [EOS], cut to the model's length).

    ``sos`` is ``[S_1]``: ml-4m's decoder sequence of a modality generated whole starts with it at
    position 0 and predicts the first content token from it (fourm's samplers feed ``sos`` first).
    """

    def __init__(self, name: str, tokenizer: Any, max_length: int) -> None:
        if name not in MODALITIES:
            raise FourmError(f"'{name}' is not an ml-4m sequence modality (known: {', '.join(MODALITIES)})")
        self.name, self.tokenizer, self.length = name, tokenizer, max_length
        self.ml4m_kind = name
        # free text decodes like a caption; the structured ones get their own (grammar-free) kind
        self.text_kind = "caption" if name in ("caption", "human_poses", "sam_instance") else f"ml4m_{name}"
        self.max_tokens = min(max_length, MAX_TOKENS.get(name, max_length))
        self.vocab_size: int = tokenizer.vocab_size
        self.sos, self.eos, self.pad = tokenizer.sentinel_id(1), tokenizer.eos_id, tokenizer.pad_id
        self._no_content = torch.tensor(tokenizer.sentinel_ids, dtype=torch.long)

    def normalize(self, value: Any) -> Any:
        """One raw value (strings parsed unless already serialised), checked by serialising it."""
        if isinstance(value, str) and self.ml4m_kind in ("det", "color_palette", "metadata") and not _looks_serialised(value):
            value = parse_value({"det": "bboxes"}.get(self.ml4m_kind, self.ml4m_kind), value)
        if self.ml4m_kind == "metadata" and isinstance(value, dict):
            value = {k: (round(v) if isinstance(v, float) and v.is_integer() else v) for k, v in value.items()}
        self.tokenizer.to_text(self.ml4m_kind, value)  # FourmError for a malformed value
        return value

    def _ids(self, value: Any, prefix: bool) -> list[int]:
        ids = self.tokenizer.sequence_ids(self.ml4m_kind, value, max_tokens=self.max_tokens)
        return ids[:-1] if prefix and ids and ids[-1] == self.eos else ids

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Values -> ids (B, max_length): ml-4m's ids of each whole value ending in [EOS] (unless cut),
        padded with [PAD]. ``prefix``: no [EOS], and only the first n columns, n = the longest value."""
        rows = [self._ids(self.normalize(v), prefix) for v in as_list(values, self.name)]
        ids = torch.full((len(rows), self.length), self.pad, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids[:, : max(len(r) for r in rows)] if prefix else ids

    def decode_with_failures(self, tokens: Any) -> tuple[list[Any], list[list[dict[str, str]]]]:
        """Ids (B, L) -> (one value per row, up to [EOS], sentinels ignored; per row the groups that
        did not parse as ``{"text", "error"}``)."""
        ids = check_ids(self.name, tokens, None)
        drop = (ids < 0) | (ids >= self.vocab_size) | torch.isin(ids, self._no_content)
        ids = torch.where(drop, self.pad, ids)
        values, failures = [], []
        for text in self.tokenizer.decode(ids):
            failed: list[tuple[str, str]] = []
            values.append(self.tokenizer.from_text(self.ml4m_kind, text, strict=False, failures=failed))
            failures.append([{"text": t, "error": e} for t, e in failed])
        return values, failures


# how an ml-4m image-token modality's raw values look, by the name's base (``tok_<base>[@<size>]``)
_ML4M_IMAGE_KINDS = {"rgb": "rgb", "depth": "depth", "normal": "normals", "semseg": "semseg",
                     "canny_edge": "edges", "sam_edge": "edges"}
# ml-4m's token modalities that are not image kinds: arrays given as they are, by their ndim
_ML4M_ARRAY_NDIM = {"features": 3, "vector": 1}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _ml4m_image_kind(name: str, cfg: Any) -> str:
    """rgb / normals / depth / edges / semseg (images), features (feature maps), vector (global)."""
    if cfg.input == "labels":
        return "semseg"
    if cfg.input in ("features", "vector"):
        return cfg.input
    base = name.split("@")[0].removeprefix("tok_")
    return _ML4M_IMAGE_KINDS.get(base, "rgb" if cfg.in_channels == 3 else "depth")


def _standardise_depth(depth: Tensor, cut: float = 0.1) -> Tensor:
    """ml-4m's depth input: minus the mean, over the standard deviation, of the values between the
    10th and 90th percentile of the map (per map; depth (H, W))."""
    flat = depth.reshape(-1).sort().values
    n = flat.numel()
    kept = flat[int(cut * n) : int((1 - cut) * n)]
    kept = kept if kept.numel() else flat
    return (depth - kept.mean()) / torch.sqrt(kept.var(unbiased=True).nan_to_num(0.0) + 1e-6)


def _pca_picture(features: Tensor) -> np.ndarray:
    """A feature map (C, h, w) -> uint8 (h, w, 3): its first three principal components, each
    stretched to 0..255 (how ml-4m's demos show CLIP / DINOv2 / ImageBind tokens)."""
    c, h, w = features.shape
    x = features.reshape(c, h * w).T.double()
    x = x - x.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    k = min(3, vh.shape[0])
    comps = x @ vh[:k].T  # (h*w, k)
    signs = torch.sign(comps.gather(0, comps.abs().argmax(dim=0, keepdim=True)))  # deterministic sign
    comps = comps * torch.where(signs == 0, 1.0, signs)
    if k < 3:
        comps = torch.cat([comps, comps.new_zeros(h * w, 3 - k)], dim=1)
    lo, hi = comps.min(dim=0).values, comps.max(dim=0).values
    comps = (comps - lo) / torch.where(hi > lo, hi - lo, 1.0)
    return (comps.reshape(h, w, 3) * 255).round().byte().numpy()


DIVAE_STEPS = 25  # denoising steps of an ml-4m DiVAE decoding generated tokens (ml-4m's demos: 25-50)


class Ml4mImageCodec:
    """One image-token modality of a converted ml-4m model (an
    :class:`tokenizers_zoo.image.ml4m_vqvae.Ml4mVQVAE`), with ml-4m's input conventions.

    Raw values by modality (``tok_<base>[@<size>]``; arrays, PIL images or paths, centre-cropped and
    resized to the tokenizer's size):

    ======================  ========================================  ====================================
    base                    value -> tokenizer input                  decoded value
    ======================  ========================================  ====================================
    rgb                     uint8 (H, W, 3) -> [-1, 1] (ImageNet-      uint8 (H, W, 3)
                            standardised if the tokenizer undoes it)
    normal                  uint8 (H, W, 3) -> [-1, 1]                 uint8 (H, W, 3)
    depth                   float (H, W) -> per-map standardised      float32 (H, W) in [0, 1] (min-max)
                            over its 10-90th percentile values
    canny_edge, sam_edge    edges (H, W) -> {-1, 1} per channel       float32 (H, W) in {0, 1}
    semseg                  class ids (H, W) as the tokenizer counts  uint8 class ids (H, W)
    clip, dinov2, imagebind feature map (C, h, w) (array or .npy)     uint8 (h, w, 3): three principal
                            from the feature network                  components (raw: :meth:`decode_raw`)
    *_global                vector (C,)                               float32 (C,)
    ======================  ========================================  ====================================

    ml-4m's DiVAE tokenizers (rgb, depth, normals, edges; an :class:`Ml4mDiVAE`) decode by diffusion:
    ``diffusion_steps`` denoising steps (default :data:`DIVAE_STEPS`, settable on the codec or per
    :meth:`decode` / :meth:`decode_raw` call), the noise drawn from ``seed``, so that a seed gives
    what ``Ml4mDiVAE.decode(ids, steps=, seed=)`` gives. A tokenizer converted without its decoder
    (``--encoder-only``, or a DiVAE whose decoder fourm lacks) encodes but does not decode:
    :meth:`decode` gives None per row (with a warning); the tokens stay usable.
    """

    kind = "image"

    def __init__(self, name: str, tokenizer: Any, diffusion_steps: int | None = None) -> None:
        self.name, self.tokenizer = name, tokenizer.eval()
        cfg = tokenizer.cfg
        self.cfg = cfg
        self.image_kind = _ml4m_image_kind(name, cfg)
        self.image_size: int = cfg.image_size
        self.length, self.vocab_size = tokenizer.num_tokens, tokenizer.vocab_size
        self.diffusion = isinstance(tokenizer, Ml4mDiVAE)
        self.can_decode = self.diffusion or cfg.decoder is not None
        self.diffusion_steps: int = DIVAE_STEPS if diffusion_steps is None else diffusion_steps
        self._warned = False

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one raw feature value: (C, h, w) for feature maps, (C,) for vectors."""
        if _ML4M_ARRAY_NDIM.get(self.image_kind) == 1:  # a global vector
            return (self.cfg.in_channels,)
        h, w = self.cfg.grid_size
        return (self.cfg.in_channels, h, w)

    def normalize(self, value: Any) -> np.ndarray:
        """One raw value -> the array the tokenizer input is made from (see the class docstring)."""
        if self.image_kind not in IMAGE_KINDS:  # feature maps / vectors: arrays only
            if isinstance(value, (str, Path)) and str(value).endswith(".npy"):
                value = np.load(value)
            elif isinstance(value, (str, Path, Image.Image)):
                raise FourmError(
                    f"'{self.name}' tokenizes {self.cfg.domain or self.image_kind} {self.image_kind} of shape "
                    f"{self.feature_shape}, which fourm does not compute from an image: give that array "
                    "(or a .npy file), or token ids"
                )
            arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float32)
            if arr.shape != self.feature_shape or not np.isfinite(arr).all():
                raise FourmError(f"{self.name}: expected finite {self.image_kind} of shape {self.feature_shape}, "
                                 f"got {tuple(arr.shape)}")
            return arr
        return load_image(value, self.image_kind, self.image_size, self.cfg.num_labels)

    def _input(self, arrays: list[np.ndarray]) -> Tensor:
        """Normalised values -> the tokenizer's input batch (ml-4m's conventions)."""
        cfg, spec = self.cfg, IMAGE_KINDS.get(self.image_kind)
        if spec is not None and spec.labels:
            return torch.from_numpy(np.stack(arrays).astype(np.int64))
        x = torch.from_numpy(np.stack(arrays).astype(np.float32))
        if spec is None:  # feature maps / vectors, as given
            return x
        if spec.channels == 3:
            x = x.permute(0, 3, 1, 2) / 255.0 * 2.0 - 1.0  # (B, 3, H, W) in [-1, 1]
            if cfg.undo_std:  # the tokenizer expects ImageNet-standardised pixels and undoes that itself
                mean = torch.tensor(_IMAGENET_MEAN)[None, :, None, None]
                std = torch.tensor(_IMAGENET_STD)[None, :, None, None]
                x = ((x + 1.0) / 2.0 - mean) / std
        elif spec.continuous:  # depth
            x = torch.stack([_standardise_depth(d) for d in x])[:, None]
        else:  # binary maps (edges) {0, 1} -> {-1, 1}
            x = (x * 2.0 - 1.0)[:, None]
        if x.shape[1] != cfg.in_channels:
            if x.shape[1] != 1:
                raise FourmError(f"{self.name}: the tokenizer reads {cfg.in_channels} channels, the value has {x.shape[1]}")
            x = x.expand(-1, cfg.in_channels, -1, -1)
        return x

    @torch.no_grad()
    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Raw values -> ids (B, N) long on the CPU (the tokenizer runs in fp32)."""
        if prefix:
            raise FourmError(f"'{self.name}' is an image: a partial image is given as token ids, not as a prefix")
        spec = IMAGE_KINDS.get(self.image_kind)
        single = spec.ndim if spec is not None else _ML4M_ARRAY_NDIM[self.image_kind]
        arrays = [self.normalize(v) for v in as_list(values, self.name, single)]
        return self.tokenizer.encode(self._input(arrays).to(self.tokenizer.device)).cpu()

    @torch.no_grad()
    def decode_raw(self, tokens: Any, seed: int = 0, steps: int | None = None) -> Tensor:
        """Ids (B, N) -> the tokenizer's own decoder output on the CPU (semseg: class ids (B, H, W);
        vectors (B, C); else (B, C, H, W) in the tokenizer's input space). A DiVAE decodes with
        ``steps`` denoising steps (default ``diffusion_steps``) from the noise of ``seed``; other
        tokenizers are deterministic and ignore both."""
        if not self.can_decode:
            raise FourmError(f"'{self.name}': its tokenizer was converted without a decoder (encoder only): "
                             "it gives token ids, not values")
        ids = check_ids(self.name, tokens, self.vocab_size, self.length).to(self.tokenizer.device)
        if self.diffusion:
            out = self.tokenizer.decode(ids, steps=self.diffusion_steps if steps is None else steps, seed=seed).cpu()
        else:
            out = self.tokenizer.decode(ids).cpu()
        labels = self.image_kind in IMAGE_KINDS and IMAGE_KINDS[self.image_kind].labels
        return out if labels else out.float()

    def decode(self, tokens: Any, seed: int = 0, steps: int | None = None) -> list[Any]:
        """Ids (B, N) -> one value per row (see the class docstring); None per row without a decoder.
        ``seed`` / ``steps``: the diffusion noise and steps of a DiVAE (see :meth:`decode_raw`)."""
        ids = check_ids(self.name, tokens, self.vocab_size, self.length)
        if not self.can_decode:
            if not self._warned:
                warnings.warn(f"'{self.name}': its tokenizer was converted without a decoder (encoder only; convert "
                              f"ml-4m's DiVAE with its diffusion decoder: fourm-convert ml4m SRC OUT --tokenizer "
                              f"{self.name}=<DiVAE dir>): no values, only token ids", stacklevel=2)
                self._warned = True
            return [None] * ids.shape[0]
        out = self.decode_raw(ids, seed=seed, steps=steps)
        spec = IMAGE_KINDS.get(self.image_kind)
        if spec is None:  # global vectors as they are; feature maps as a picture of their principal components
            if _ML4M_ARRAY_NDIM[self.image_kind] == 1:
                return [row.numpy().astype(np.float32) for row in out]
            return [_pca_picture(row) for row in out]
        if spec.labels:
            return [row.numpy().astype(np.uint8 if self.cfg.num_labels <= 256 else np.int32) for row in out]
        if spec.channels == 3:
            if out.shape[1] != 3:
                raise FourmError(f"{self.name}: the decoder gives {out.shape[1]} channels, expected 3")
            pixels = ((out.clamp(-1.0, 1.0) + 1.0) * 127.5).round().byte()
            return [row.permute(1, 2, 0).numpy() for row in pixels]
        maps = out.mean(dim=1)  # (B, H, W)
        if spec.binary:
            return [(row > 0).float().numpy() for row in maps]
        values = []
        for row in maps:  # depth: relative, stretched to [0, 1]
            lo, hi = row.min(), row.max()
            values.append(((row - lo) / (hi - lo) if hi > lo else torch.zeros_like(row)).numpy().astype(np.float32))
        return values
