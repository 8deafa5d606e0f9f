"""Per-modality codecs: raw values <-> token ids with the modality's tokenizer.

* :class:`ImageCodec` (``ImageTokenizer``): arrays / PIL images / paths -> (B, N) ids; ids -> rgb uint8
  (H, W, 3), depth float32 (H, W) in [0, 1], semseg uint8 class ids (H, W), edges float32 (H, W) in {0, 1}.
* :class:`SequenceCodec` (shared ``TextTokenizer``): captions, boxes, palettes, metadata -> (B, L) ids
  ending in [EOS] and padded with [PAD] (a ``prefix`` has no [EOS]); ids -> values (lenient parsing,
  the groups that did not parse listed by ``decode_with_failures``).
* :class:`VectorCodec` (``VectorTokenizer``): float vectors (D,) <-> (B, K) ids.
* :class:`PatchCodec` (no tokenizer): images <-> pixel patches (B, N, P) uint8 of a patch modality
  (:mod:`fourm.core.patches`), the encoder input of e.g. ``rgb_pixels`` (and of ml-4m's ``rgb@224``).
* :class:`BoxMapCodec` (no tokenizer): box lists -> (B, grid * grid) label tokens of a box-map
  modality (:mod:`fourm.data.derive.box_map`), an input derived from ``bboxes``; ids -> a picture.
* :class:`Ml4mSequenceCodec` (:class:`fourm.convert.ml4m_text.Ml4mTextTokenizer`): the sequence
  modalities of a converted ml-4m model (``caption``, ``det``, ``metadata``, ``color_palette``, ...)
  with ml-4m's ids and serialisation; its ``sos`` is the first sentinel ``[S_1]``, the token ml-4m
  feeds its decoder first (there is no [SOS] in ml-4m's decoder sequences).
* :class:`Ml4mImageCodec` (:class:`tokenizers_zoo.image.ml4m_vqvae.Ml4mVQVAE`, or
  :class:`tokenizers_zoo.image.ml4m_divae.Ml4mDiVAE`, decoding by diffusion): the image-token
  modalities of a converted ml-4m model (``tok_semseg@224``, ``tok_rgb@224``, ``tok_clip@224``, ...).
* :class:`MissingTokenizerCodec`: a modality whose tokenizer the bundle does not hold (registry
  ``tokenizer: null``): its token ids still work; raw values and decoding fail with one line.

Images are encoded under bf16 autocast where the device runs bf16 natively
(:mod:`fourm.utils.precision`, as pre-tokenization does, so tokens match the training data) and
decoded in fp32.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fourm.core.boxes import check_boxes
from fourm.core.image_kinds import IMAGE_KINDS
from fourm.errors import FourmError
from fourm.generation.values import load_image, parse_value
from fourm.utils.precision import bf16_autocast
from tokenizers_zoo.image.ml4m_divae import Ml4mDiVAE


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
        arrays = [self.normalize(v) for v in _as_list(values, self.name, IMAGE_KINDS[self.image_kind].ndim)]
        x = self.tokenizer.preprocess(arrays).to(self.tokenizer.device)
        with bf16_autocast(x.device) if self.autocast else contextlib.nullcontext():
            return self.tokenizer.encode(x).cpu()

    @torch.no_grad()
    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """Ids (B, N) -> one schema image per row (edges as float32 in {0, 1})."""
        ids = _check_ids(self.name, tokens, self.vocab_size, self.length).to(self.tokenizer.device)
        generator = torch.Generator(device=ids.device).manual_seed(seed)
        images = self.tokenizer.postprocess(self.tokenizer.decode(ids, generator=generator))
        if IMAGE_KINDS[self.image_kind].binary:
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
        if not spec.patch_size:
            raise FourmError(f"modality '{name}' is not a patch modality (no patch_size)")
        self.name, self.patch_size, self.channels = name, spec.patch_size, spec.channels
        self.image_kind = spec.data_key if spec.data_key in IMAGE_KINDS else "rgb"
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




# ------------------------------------------------------------------------------------ ml-4m
class BoxMapCodec:
    """A box-map modality (``box_labels`` in its registry spec): the boxes of its ``data_key``
    (e.g. ``bboxes``) drawn on the token grid; input only, computed, never generated."""

    kind = "box_map"
    tokenizer = None  # nothing to save in a bundle

    def __init__(self, name: str, spec: Any) -> None:
        if not spec.box_labels:
            raise FourmError(f"modality '{name}' is not a box map (no box_labels)")
        self.name, self.source_kind = name, spec.data_key
        self.labels, self.grid = list(spec.box_labels), spec.grid_size
        self.length, self.vocab_size = spec.num_tokens, spec.vocab_size

    def normalize(self, value: Any) -> list[dict]:
        """One box list (or its string form, :mod:`fourm.generation.values`), checked as import checks
        boxes (:func:`fourm.core.boxes.check_boxes`), coordinates not range-checked: the map clips them."""
        try:
            return check_boxes(parse_value("bboxes", value), normalised=False)
        except FourmError as e:
            raise FourmError(f"'{self.name}': {e}") from None

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        """Box lists -> (B, grid * grid) label tokens."""
        from fourm.data.derive.box_map import box_map_tokens

        if prefix:
            raise FourmError(f"'{self.name}' is a box map: it has no prefix")
        rows = [box_map_tokens(self.normalize(v), self.grid, self.labels) for v in _as_list(values, self.name)]
        return torch.tensor(rows, dtype=torch.long)

    def decode(self, tokens: Any, seed: int = 0) -> list[np.ndarray]:
        """(B, grid * grid) tokens -> one (grid, grid) uint8 label map per row."""
        ids = _check_ids(self.name, tokens, self.vocab_size, self.length)
        return [row.reshape(self.grid, self.grid).numpy().astype(np.uint8) for row in ids]


def _looks_serialised(text: str) -> bool:
    """Whether a det / palette / metadata string is already ml-4m's text (``v0=12 v1=...``)."""
    words = text.split()
    return bool(words) and re.fullmatch(r"v[0-3]=\d+", words[0]) is not None


class Ml4mSequenceCodec(SequenceCodec):
    """One sequence modality of a converted ml-4m model, read and written with ml-4m's WordPiece
    vocabulary (:class:`fourm.convert.ml4m_text.Ml4mTextTokenizer`).

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
        from fourm.convert.ml4m_text import MAX_TOKENS, MODALITIES

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
        rows = [self._ids(self.normalize(v), prefix) for v in _as_list(values, self.name)]
        ids = torch.full((len(rows), self.length), self.pad, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids[:, : max(len(r) for r in rows)] if prefix else ids

    def decode_with_failures(self, tokens: Any) -> tuple[list[Any], list[list[dict[str, str]]]]:
        """Ids (B, L) -> (one value per row, up to [EOS], sentinels ignored; per row the groups that
        did not parse as ``{"text", "error"}``)."""
        ids = _check_ids(self.name, tokens, None)
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
        arrays = [self.normalize(v) for v in _as_list(values, self.name, single)]
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
        ids = _check_ids(self.name, tokens, self.vocab_size, self.length).to(self.tokenizer.device)
        if self.diffusion:
            out = self.tokenizer.decode(ids, steps=self.diffusion_steps if steps is None else steps, seed=seed).cpu()
        else:
            out = self.tokenizer.decode(ids).cpu()
        labels = self.image_kind in IMAGE_KINDS and IMAGE_KINDS[self.image_kind].labels
        return out if labels else out.float()

    def decode(self, tokens: Any, seed: int = 0, steps: int | None = None) -> list[Any]:
        """Ids (B, N) -> one value per row (see the class docstring); None per row without a decoder.
        ``seed`` / ``steps``: the diffusion noise and steps of a DiVAE (see :meth:`decode_raw`)."""
        ids = _check_ids(self.name, tokens, self.vocab_size, self.length)
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


class MissingTokenizerCodec:
    """A modality whose tokenizer the bundle does not hold (``tokenizer: null`` in its registry entry,
    e.g. an ml-4m model converted without ``--tokenizer NAME=...``). Token ids of it can still be
    given and generated; raw values and decoding raise one FourmError naming the fix."""

    tokenizer = None  # nothing to save in a bundle

    def __init__(self, name: str, kind: str, length: int, vocab_size: int, root: str | Path = "") -> None:
        self.name, self.kind, self.length, self.vocab_size = name, kind, length, vocab_size
        self.root = str(root)

    def _fail(self) -> FourmError:
        where = f" {self.root}" if self.root else ""
        fix = "text=<text tokenizer>" if self.kind == "sequence" else f"{self.name}=<tokenizer>"
        return FourmError(
            f"modality '{self.name}' has no tokenizer in the bundle{where}: add it (for an ml-4m model: "
            f"fourm-convert ml4m SRC OUT --tokenizer {fix}), or give and take its token ids (decode=False)"
        )

    def normalize(self, value: Any) -> Any:
        raise self._fail()

    def encode(self, values: Any, prefix: bool = False) -> Tensor:
        raise self._fail()

    def decode(self, tokens: Any, seed: int = 0) -> list[Any]:
        raise self._fail()


Codec = ImageCodec | SequenceCodec | VectorCodec | PatchCodec | BoxMapCodec | Ml4mImageCodec | MissingTokenizerCodec
