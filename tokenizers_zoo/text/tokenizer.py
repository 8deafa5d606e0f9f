"""The text tokenizer: a lower-cased WordPiece vocabulary (Hugging Face ``tokenizers``) trained on
captions and label / metadata words, extended with every structured token of
:mod:`tokenizers_zoo.text.vocabulary` as unsplittable special tokens (ids 0..N-1, [PAD] = 0).

Captions, bounding boxes, colour palettes and metadata all become sequences of this one vocabulary
(the structured modalities through :mod:`tokenizers_zoo.text.serializers`)::

    tok = TextTokenizer.train(captions, vocab_size=4096)
    ids, lengths = tok.encode_modality("bboxes", [sample["bboxes"]], max_length=64)   # (B, L), (B,)
    boxes = tok.decode_modality("bboxes", ids, strict=False)
    tok.save_pretrained("checkpoints/text_tokenizer")
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from torch import Tensor
from tqdm.auto import tqdm

import tokenizers_zoo.text.serializers as serializers
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.config import Config
from fourm.utils.outputs import MARKER
from tokenizers_zoo.text.vocabulary import (
    EOS,
    MASK,
    PAD,
    SOS,
    UNK,
    StructuredVocabConfig,
    sentinel_token,
    structured_tokens,
)

MODALITIES = ("caption", "bboxes", "color_palette", "metadata")
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
# Always in the base vocabulary, so digits and punctuation never become [UNK] for lack of examples.
BASE_ALPHABET = list(string.ascii_lowercase + string.digits + string.punctuation)
_BRACKET_RE = re.compile(r"\[[^\[\]\s]+\]")
# The WordPiece decoder spaces out punctuation and only re-attaches . , ! ? itself.
_TIDY_RULES = [
    (re.compile(r"(\w) ' (\w)"), r"\1'\2"),  # "it ' s" -> "it's"
    (re.compile(r" ([:;%)])"), r"\1"),  # "shapes : a" -> "shapes: a"
    (re.compile(r"\( "), "("),
]


def _tidy(text: str) -> str:
    """Undo the decoder's spacing around apostrophes, colons, semicolons, percent signs, brackets."""
    for pattern, replacement in _TIDY_RULES:
        text = pattern.sub(replacement, text)
    return text


@dataclass
class TextTokenizerConfig(Config):
    """What a trained TextTokenizer was built from (saved as config.json next to tokenizer.json)."""

    structured: StructuredVocabConfig = field(default_factory=StructuredVocabConfig)
    target_vocab_size: int = 4096


def corpus_from_samples(samples: Iterable[dict]) -> Iterator[str]:
    """Training texts from raw samples: captions, box labels and category metadata words."""
    for sample in samples:
        if isinstance(sample.get("caption"), str):
            yield sample["caption"]
        for box in sample.get("bboxes") or []:
            if isinstance(box, dict) and isinstance(box.get("label"), str):
                yield box["label"]
        for value in (sample.get("metadata") or {}).values():
            if isinstance(value, str):
                yield value


def _new_hf_tokenizer(special: list[str], vocab: dict[str, int] | None = None) -> Tokenizer:
    """A lower-casing WordPiece tokenizer (empty, or with ``vocab``) with ``special`` as added tokens."""
    tok = Tokenizer(models.WordPiece(vocab, unk_token=UNK, continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # whitespace + each punctuation char
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in special])
    return tok


class TextTokenizer:
    """Lower-cased WordPiece + structured tokens; encode/decode text and structured modalities."""

    def __init__(self, tokenizer: Tokenizer, config: TextTokenizerConfig):
        self._tok = tokenizer
        self.config = config
        self.structured = structured_tokens(config.structured)
        for expected_id, token in enumerate(self.structured):
            actual = tokenizer.token_to_id(token)
            if actual != expected_id:
                raise FourmError(
                    f"tokenizer does not match its config: token '{token}' has id {actual} (expected {expected_id})"
                )
        self.pad_id, self.sos_id, self.eos_id, self.unk_id, self.mask_id = (
            self.structured.index(t) for t in (PAD, SOS, EOS, UNK, MASK)
        )

    # ------------------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = 4096,
        config: StructuredVocabConfig | None = None,
        show_progress: bool = False,
    ) -> TextTokenizer:
        """Train a WordPiece vocabulary of at most ``vocab_size`` tokens (structured ones included).

        Structured tokens found in ``texts`` (e.g. serialised boxes) are removed before training.
        Deterministic for the same corpus.
        """
        config = config or StructuredVocabConfig()
        special = structured_tokens(config)
        known = set(special)
        corpus, chars = [], set(BASE_ALPHABET)
        for i, text in enumerate(tqdm(texts, desc="reading corpus", disable=not show_progress)):
            if not isinstance(text, str):
                raise FourmError(f"training text {i} must be a string, got {type(text).__name__}")
            text = _BRACKET_RE.sub(lambda m: " " if m.group(0) in known else m.group(0), text)
            corpus.append(text)
            chars.update(text)
        tok = _new_hf_tokenizer(special)
        chars = sorted({c for raw in chars for c in tok.normalizer.normalize_str(raw) if not c.isspace()})
        # Every "##c" continuation token gets a fixed id before training: the trainer would otherwise
        # number them in hash-map order, which changes merge tie-breaks (huggingface/tokenizers#1794).
        continuation = [f"##{c}" for c in chars]
        minimum = len(special) + len(continuation) + len(chars)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < minimum:
            raise FourmError(
                f"vocab_size must be an integer >= {minimum} ({len(special)} structured tokens + "
                f"{2 * len(chars)} character tokens for this corpus), got {vocab_size!r}"
            )
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=1,
            special_tokens=special + continuation,
            initial_alphabet=chars,
            continuing_subword_prefix="##",
            show_progress=show_progress,
        )
        tok.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
        # Rebuild from the learnt vocabulary so that only the structured tokens are special.
        tok = _new_hf_tokenizer(special, vocab=tok.get_vocab(with_added_tokens=True))
        return cls(tok, TextTokenizerConfig(structured=config, target_vocab_size=vocab_size))

    # ------------------------------------------------------------------------------ vocabulary

    @property
    def vocab_size(self) -> int:
        """Number of ids (structured tokens + WordPiece tokens)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"TextTokenizer(vocab_size={self.vocab_size}, structured={len(self.structured)})"

    def token_id(self, token: str) -> int:
        """Id of one vocabulary token, e.g. ``token_id("[x=3]")``; FourmError if unknown."""
        token_id = self._tok.token_to_id(token)
        if token_id is None:
            raise FourmError(f"unknown token {token!r} (not in the vocabulary of {self.vocab_size} tokens)")
        return token_id

    def id_to_token(self, token_id: int) -> str:
        """The token string of an id; FourmError if out of range."""
        token = self._tok.id_to_token(int(token_id))
        if token is None or token_id < 0:
            raise FourmError(f"token id {token_id} out of range (vocabulary: 0..{self.vocab_size - 1})")
        return token

    @property
    def sentinel_ids(self) -> list[int]:
        """Ids of ``[S_0]``, ``[S_1]``, ... in order."""
        return [self.token_id(sentinel_token(i)) for i in range(self.config.structured.num_sentinels)]

    def tokenize(self, text: str) -> list[str]:
        """Token strings of one text (no [SOS]/[EOS])."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    # ------------------------------------------------------------------------------ text

    def encode(
        self,
        texts: Sequence[str],
        max_length: int,
        add_sos: bool = False,
        add_eos: bool = True,
        truncation: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Texts -> (ids (B, max_length) long padded with [PAD], lengths (B,) long incl. [SOS]/[EOS]).

        A text longer than ``max_length`` raises FourmError unless ``truncation=True``, which cuts
        its tokens so that [SOS]/[EOS] still fit.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise FourmError(f"encode expects a list of strings, got {type(texts).__name__}")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise FourmError(f"text {i} must be a string, got {type(text).__name__}")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:  # lone surrogates: undecodable bytes from argv or a file
                raise FourmError(
                    f"text {text!r:.80} is not valid UTF-8 (character {e.start}: {text[e.start]!r}); "
                    "give captions as UTF-8 text"
                ) from None
        budget = max_length - int(add_sos) - int(add_eos) if isinstance(max_length, int) else -1
        if isinstance(max_length, bool) or budget < 0:
            raise FourmError(
                f"max_length must be an integer >= {int(add_sos) + int(add_eos)}, got {max_length!r}"
            )
        ids = torch.full((len(texts), max_length), self.pad_id, dtype=torch.long)  # (B, L)
        lengths = torch.zeros(len(texts), dtype=torch.long)  # (B,)
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False) if texts else []
        for i, enc in enumerate(encodings):
            row = enc.ids
            if len(row) > budget:
                if not truncation:
                    raise FourmError(
                        f"text {i} has {len(row)} tokens, more than the {budget} that fit in "
                        f"max_length={max_length} (pass truncation=True to cut): '{texts[i][:60]}'"
                    )
                row = row[:budget]
            row = [self.sos_id] * add_sos + row + [self.eos_id] * add_eos
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            lengths[i] = len(row)
        return ids, lengths

    def decode(self, ids: Tensor | Sequence) -> list[str]:
        """Ids (B, L) (or one sequence (L,)) -> texts, stopping at [EOS], skipping [PAD] and [SOS]."""
        rows = (
            ids.tolist()
            if hasattr(ids, "tolist")
            else [r.tolist() if hasattr(r, "tolist") else r for r in ids]
        )
        if rows and not isinstance(rows[0], (list, tuple)):
            rows = [rows]  # one sequence (L,)
        texts = []
        for row in rows:
            kept = []
            for token_id in (int(t) for t in row):
                if token_id == self.eos_id:
                    break
                if token_id in (self.pad_id, self.sos_id):
                    continue
                if not 0 <= token_id < self.vocab_size:
                    raise FourmError(
                        f"token id {token_id} out of range (vocabulary: 0..{self.vocab_size - 1})"
                    )
                kept.append(token_id)
            texts.append(_tidy(self._tok.decode(kept, skip_special_tokens=False)))
        return texts

    # ------------------------------------------------------------------------------ modalities

    def _check_modality(self, name: str) -> None:
        if name not in MODALITIES:
            raise FourmError(f"unknown text modality '{name}' (known: {', '.join(MODALITIES)})")

    def to_text(self, name: str, value: Any, strict: bool = True) -> str:
        """One value of modality ``name`` -> its token text (serializers for structured modalities)."""
        self._check_modality(name)
        cfg = self.config.structured
        if name == "caption":
            if not isinstance(value, str):
                raise FourmError(f"caption must be a string, got {type(value).__name__}")
            return value
        if name == "bboxes":
            return serializers.bboxes_to_text(value, cfg.coord_bins)
        if name == "color_palette":
            return serializers.palette_to_text(value, cfg.color_levels, cfg.max_palette_size)
        return serializers.metadata_to_text(value, cfg.metadata, strict=strict)

    def from_text(self, name: str, text: str, strict: bool = True) -> Any:
        """Inverse of :meth:`to_text`; ``strict=False`` skips malformed groups (model outputs)."""
        self._check_modality(name)
        cfg = self.config.structured
        if name == "caption":
            return text
        if name == "bboxes":
            return serializers.text_to_bboxes(text, cfg.coord_bins, strict=strict)
        if name == "color_palette":
            return serializers.text_to_palette(text, cfg.color_levels, cfg.max_palette_size, strict=strict)
        return serializers.text_to_metadata(text, cfg.metadata, strict=strict)

    def encode_modality(
        self,
        name: str,
        values: Sequence[Any],
        max_length: int,
        add_sos: bool = False,
        add_eos: bool = True,
        truncation: bool = False,
        strict: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Values of one modality (captions, box lists, palettes, metadata dicts) -> (ids (B, L), lengths (B,)).

        ``strict=False`` drops metadata keys the config does not know instead of raising.
        """
        self._check_modality(name)
        if isinstance(values, (str, dict)) or not isinstance(values, Sequence):
            raise FourmError(f"encode_modality expects a list of {name} values (one per sample)")
        texts = [self.to_text(name, v, strict=strict) for v in values]
        return self.encode(texts, max_length, add_sos=add_sos, add_eos=add_eos, truncation=truncation)

    def decode_modality(self, name: str, ids: Tensor | Sequence, strict: bool = True) -> list[Any]:
        """Ids (B, L) of modality ``name`` -> one value per row (see :meth:`from_text`)."""
        self._check_modality(name)
        return [self.from_text(name, text, strict=strict) for text in self.decode(ids)]

    # ------------------------------------------------------------------------------ files

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``tokenizer.json`` + ``config.json`` into directory ``path`` (replaced atomically)."""
        path = Path(path)
        if path.exists():
            if not path.is_dir():
                raise FourmError(f"cannot save tokenizer to {path}: it is a file, expected a directory")

            others = sorted(p.name for p in path.iterdir() if p.name not in (TOKENIZER_FILE, CONFIG_FILE, MARKER))
            if others:
                raise FourmError(
                    f"refusing to replace {path}: it holds other files ({', '.join(others[:3])}); "
                    "save the tokenizer into its own directory"
                )
        with atomic_dir(path) as tmp:
            self._tok.save(str(tmp / TOKENIZER_FILE))
            self.config.save_json(tmp / CONFIG_FILE)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TextTokenizer:
        """Load a tokenizer saved by :meth:`save_pretrained`; FourmError on missing or corrupt files."""
        path = Path(path)
        if not path.is_dir():
            raise FourmError(f"tokenizer directory not found: {path}")
        for name in (TOKENIZER_FILE, CONFIG_FILE):
            if not (path / name).is_file():
                raise FourmError(
                    f"missing {name} in {path} (expected a directory written by save_pretrained)"
                )
        config = TextTokenizerConfig.from_file(path / CONFIG_FILE)
        try:
            json.loads((path / TOKENIZER_FILE).read_text())
            tok = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        except Exception as e:  # tokenizers raises plain Exception on malformed files
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise FourmError(f"corrupt {TOKENIZER_FILE} in {path}: {first}") from None
        try:
            return cls(tok, config)
        except FourmError as e:
            raise FourmError(f"{path}: {e}") from None
