"""The modality I/O layer: per-modality codecs, raw values <-> token ids with the modality's tokenizer.

One code path for every raw value -> tokens: pre-tokenization (the training tokens,
:mod:`fourm.data.pretokenize`) and generation, retrieval and evaluation (bundle codecs) all encode
with ``codec.normalize`` + ``codec.encode``. The package depends on fourm.core, fourm.utils,
fourm.modalities and tokenizers_zoo only, never on fourm.data / generation / training.

* :class:`ImageCodec` (``ImageTokenizer``): arrays / PIL images / paths -> (B, N) ids; ids -> rgb uint8
  (H, W, 3), depth float32 (H, W) in [0, 1], semseg uint8 class ids (H, W), edges float32 (H, W) in {0, 1}.
* :class:`SequenceCodec` (shared ``TextTokenizer``): captions, boxes, palettes, metadata -> (B, L) ids
  ending in [EOS] and padded with [PAD] (a ``prefix`` has no [EOS]); ids -> values (lenient parsing,
  the groups that did not parse listed by ``decode_with_failures``).
* :class:`VectorCodec` (``VectorTokenizer``): float vectors (D,) <-> (B, K) ids.
* :class:`PatchCodec` (no tokenizer): images <-> pixel patches (B, N, P) uint8 of a patch modality
  (:mod:`fourm.core.patches`), the encoder input of e.g. ``rgb_pixels`` (and of ml-4m's ``rgb@224``).
* :class:`BoxMapCodec` (no tokenizer): box lists -> (B, grid * grid) label tokens of a box-map
  modality (:mod:`fourm.codecs.box_map`), an input derived from ``bboxes``; ids -> a picture.
* :class:`Ml4mSequenceCodec` (:class:`tokenizers_zoo.text.ml4m_wordpiece.Ml4mTextTokenizer`): the sequence
  modalities of a converted ml-4m model (``caption``, ``det``, ``metadata``, ``color_palette``, ...)
  with ml-4m's ids and serialisation; its ``sos`` is the first sentinel ``[S_1]``, the token ml-4m
  feeds its decoder first (there is no [SOS] in ml-4m's decoder sequences).
* :class:`Ml4mImageCodec` (:class:`tokenizers_zoo.image.ml4m_vqvae.Ml4mVQVAE`, or
  :class:`tokenizers_zoo.image.ml4m_divae.Ml4mDiVAE`, decoding by diffusion): the image-token
  modalities of a converted ml-4m model (``tok_semseg@224``, ``tok_rgb@224``, ``tok_clip@224``, ...).
* :class:`ImageLevelCodec` (a two-level ``ImageTokenizer``, ``architecture: vqvae2``): one grid (``token_level``
  top / bottom) of its tokens as a modality; the level modalities of one tokenizer are decoded together
  (:func:`decode_levels`: the grids joined, top first).
* :class:`VideoCodec` (``VideoTokenizer``): clips (T, H, W, 3) uint8 <-> (B, (1 + G) * S) ids of a joint
  image-video tokenizer, a ``vector``-kind modality (``configs/modalities/extra/video.yaml``).
* :class:`DynamicImageCodec` (a ``DynamicImageTokenizer``, ``architecture: dynamic``): rgb images <-> rows
  ``[pos][code] ... [EOS] [PAD]`` of a variable number of tokens, a ``sequence``-kind modality
  (``configs/modalities/extra/rgb_dynamic.yaml``), generated autoregressively.
* :class:`MissingTokenizerCodec`: a modality whose tokenizer the bundle does not hold (registry
  ``tokenizer: null``): its token ids still work; raw values and decoding fail with one line.

Images are encoded under bf16 autocast where the device runs bf16 natively
(:mod:`fourm.utils.precision`; pre-tokenization passes its ``--precision``) and decoded in fp32.
Raw values as users give them (paths, PIL images, strings): :mod:`fourm.codecs.values`.

Modules: ``base`` (shared helpers, :class:`MissingTokenizerCodec`), ``image`` (:class:`ImageCodec`,
:class:`PatchCodec`), ``sequence``, ``vector``, ``box_map`` (the box-map drawing and its codec),
``ml4m`` (the codecs of converted ml-4m models), ``levels`` (the grids of a two-level image tokenizer),
``values`` (raw value parsing), ``factory`` (:class:`~fourm.codecs.factory.CodecFactory`: which codec
reads a registry entry, for pre-tokenization and bundles alike).
"""

from __future__ import annotations

from fourm.codecs.base import MissingTokenizerCodec
from fourm.codecs.box_map import BoxMapCodec
from fourm.codecs.dynamic import DynamicImageCodec
from fourm.codecs.image import ImageCodec, PatchCodec
from fourm.codecs.levels import ImageLevelCodec, LevelEncodeCache, decode_levels
from fourm.codecs.ml4m import DIVAE_STEPS, Ml4mImageCodec, Ml4mSequenceCodec
from fourm.codecs.sequence import SequenceCodec
from fourm.codecs.value import ValueCodec  # continuous modalities (no tokenizer)
from fourm.codecs.vector import VectorCodec
from fourm.codecs.video import VideoCodec

Codec = (
    ImageCodec | ImageLevelCodec | SequenceCodec | VectorCodec | PatchCodec | BoxMapCodec | Ml4mImageCodec
    | MissingTokenizerCodec | VideoCodec | ValueCodec | DynamicImageCodec
)

__all__ = [
    "DIVAE_STEPS", "BoxMapCodec", "Codec", "DynamicImageCodec", "ImageCodec", "ImageLevelCodec", "LevelEncodeCache",
    "MissingTokenizerCodec", "Ml4mImageCodec", "Ml4mSequenceCodec", "PatchCodec", "SequenceCodec", "ValueCodec",
    "VectorCodec", "VideoCodec",
    "decode_levels",
]
