"""Which codec reads a registry entry: one dispatch for pre-tokenization (:mod:`fourm.data.pretokenize`)
and for bundles (:func:`fourm.generation.bundle.load_codecs`).

Patch modalities and box maps need no tokenizer; otherwise the tokenizer directory decides: an image
tokenizer (one grid of a two-level one for a ``token_level`` entry), a dynamic image tokenizer behind
a sequence modality, a text tokenizer (one per directory, shared by every sequence modality that
names it), a video tokenizer, or a vector tokenizer; with ``ml4m`` also the converted ml-4m formats.
The factory only builds; each caller checks the codec against what it expects (the registry's
declared tokens, or the model's).

    factory = CodecFactory(precision="bf16", resize=False, strict_text=False)   # pre-tokenization's options
    codec = factory.codec(spec, tokenizer_dir, length=spec.length)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fourm.codecs.box_map import BoxMapCodec
from fourm.codecs.dynamic import DynamicImageCodec, is_image_tokenizer_dir
from fourm.codecs.image import ImageCodec, PatchCodec
from fourm.codecs.levels import ImageLevelCodec, LevelEncodeCache
from fourm.codecs.ml4m import Ml4mImageCodec, Ml4mSequenceCodec
from fourm.codecs.sequence import SequenceCodec
from fourm.codecs.vector import VectorCodec
from fourm.codecs.video import VideoCodec, is_video_tokenizer_dir, load_video_tokenizer
from fourm.errors import FourmError


def tokenizer_format(path: str | Path) -> str | None:
    """The ``format`` field of a tokenizer directory's ``config.json`` (None without one)."""
    try:
        data = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data.get("format") if isinstance(data, dict) and isinstance(data.get("format"), str) else None


class CodecFactory:
    """Builds codecs, sharing one tokenizer per directory (a text vocabulary, a two-level image
    tokenizer with one encode per batch for its level modalities).

    ``precision``: image / video encoders' autocast (:mod:`fourm.utils.precision`); ``resize`` False:
    images of another size are refused, not resized; ``strict_text`` False: metadata keys the text
    vocabulary does not know are dropped, not refused; ``ml4m``: read ml-4m's converted formats too.
    """

    def __init__(
        self,
        device: Any = "cpu",
        precision: str = "auto",
        resize: bool = True,
        strict_text: bool = True,
        ml4m: bool = False,
    ) -> None:
        self.device, self.precision, self.resize = device, precision, resize
        self.strict_text, self.ml4m = strict_text, ml4m
        self._texts: dict[Path, Any] = {}
        self._levels: dict[Path, tuple[Any, LevelEncodeCache]] = {}

    def text_tokenizer(self, path: Path) -> Any:
        """The shared text tokenizer of directory ``path`` (ml-4m's WordPiece where ``ml4m`` and its format say so)."""
        from tokenizers_zoo.text import TextTokenizer
        from tokenizers_zoo.text.ml4m_wordpiece import FORMAT as ML4M_TEXT
        from tokenizers_zoo.text.ml4m_wordpiece import Ml4mTextTokenizer

        if path not in self._texts:
            ml4m = self.ml4m and tokenizer_format(path) == ML4M_TEXT
            self._texts[path] = Ml4mTextTokenizer.from_pretrained(path) if ml4m else TextTokenizer.from_pretrained(path)
        return self._texts[path]

    def codec(self, spec: Any, path: Path | None, length: int) -> Any:
        """The codec of registry entry ``spec`` with its tokenizer at ``path`` (None only for the
        modalities that need none); ``length``: a sequence's row length."""
        name = spec.name
        if spec.patch_size is not None:
            return PatchCodec(name, spec, resize=self.resize)
        if spec.box_labels is not None:
            return BoxMapCodec(name, spec)
        if path is None:
            raise FourmError(f"modality '{name}' needs a tokenizer directory")
        if spec.kind == "image":
            return self._image(spec, Path(path))
        if spec.kind == "sequence" and is_image_tokenizer_dir(path):  # rgb as [pos][code] pairs (fourm.codecs.dynamic)
            return DynamicImageCodec(name, self._image_tokenizer(path), precision=self.precision, resize=self.resize)
        if spec.kind == "sequence":
            from tokenizers_zoo.text.ml4m_wordpiece import Ml4mTextTokenizer

            tok = self.text_tokenizer(Path(path))
            if isinstance(tok, Ml4mTextTokenizer):
                return Ml4mSequenceCodec(name, tok, length)
            return SequenceCodec(name, tok, length, strict=self.strict_text)
        if is_video_tokenizer_dir(path):  # clips of a joint image-video tokenizer (fourm.codecs.video)
            return VideoCodec(name, load_video_tokenizer(path, device=self.device), precision=self.precision)
        from tokenizers_zoo.vector import VectorTokenizer

        return VectorCodec(name, VectorTokenizer.from_pretrained(path, map_location=self.device))

    def _image_tokenizer(self, path: Path) -> Any:
        from tokenizers_zoo.image import ImageTokenizer

        return ImageTokenizer.from_pretrained(path, device=self.device)

    def _image(self, spec: Any, path: Path) -> Any:
        if self.ml4m:
            from tokenizers_zoo.image.ml4m_divae import Ml4mDiVAE, is_divae_dir
            from tokenizers_zoo.image.ml4m_vqvae import FORMAT as ML4M_VQVAE
            from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAE

            if tokenizer_format(path) == ML4M_VQVAE:  # a DiVAE: the encoder dir + diffusion_decoder/
                ml4m_cls = Ml4mDiVAE if is_divae_dir(path) else Ml4mVQVAE
                return Ml4mImageCodec(spec.name, ml4m_cls.from_pretrained(path, device=self.device))
        options = {"precision": self.precision, "resize": self.resize}
        if spec.token_level is None:
            return ImageCodec(spec.name, self._image_tokenizer(path), **options)
        if path not in self._levels:  # the level modalities of one tokenizer share it and its encodes
            self._levels[path] = (self._image_tokenizer(path), LevelEncodeCache())
        tok, cache = self._levels[path]
        return ImageLevelCodec(spec.name, tok, spec.token_level, cache=cache, **options)
