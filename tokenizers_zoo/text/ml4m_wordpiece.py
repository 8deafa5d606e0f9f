"""The text vocabulary of the released 4M models (apple/ml-4m) and 4M's serialisation of structured
modalities into it.

ml-4m's sequence modalities (``caption``, ``det``, ``metadata``, ``color_palette``, ``human_poses``,
``sam_instance``) share one WordPiece tokenizer, ``text_tokenizer_4m_wordpiece_30k.json`` (Hugging
Face ``tokenizers`` format, lower-casing BERT normaliser and pre-tokeniser, no post-processor). Its
added tokens come first, in this order::

    [PAD] [UNK] [SOS] [EOS]                 ids 0..3 ([PAD] = 0 is the embeddings' padding row)
    [S_0] .. [S_{n-1}]                      T5-style span sentinels (n = 200)
    v0=0 .. v0=B-1, v1=.., v2=.., v3=..     value tokens, B = 1000 per family
    airplane .. zebra                       COCO class names, matched as whole (lower-cased) words

followed by the learnt WordPiece vocabulary (30000 ids in all). There is no ``[MASK]``.

Structured values become text before WordPiece (as ml-4m's data transforms write them):

* ``det``: per box ``v0=<xmin> v1=<ymin> v2=<xmax> v3=<ymax> <class name>``, coordinates in [0, 1]
  times ``B - 1`` rounded (Python's round, halves to even); boxes with a score below the threshold
  (0.6) dropped, the rest ordered by ``xmin^2 + ymin^2`` (stable).
* ``metadata``: per entry ``v1=<key id> v0=<value bin>``; each entry is tokenized on its own and the
  ids concatenated (ml-4m's chunked span masking); see :data:`METADATA_KEYS` for the binning.
* ``color_palette``: ``v1=<number of colours>`` then ``v0=<r> v0=<g> v0=<b>`` per colour (0..255).
* ``caption``: the text itself.

A sequence given to the model whole is its ids followed by ``[EOS]`` and cut to the modality's
``max_tokens`` (the cut can drop ``[EOS]``, as in ml-4m). Span masking replaces each masked run by a
sentinel ``[S_1]``, ``[S_2]``, ... in the input; the target lists each sentinel followed by its run and
ends with the next sentinel (:meth:`Ml4mTextTokenizer.span_mask`). A fully given input is therefore
``ids + [EOS]`` with target ``[S_1]``; a sequence to generate whole is the input ``[S_1]`` with a
target that starts with ``[S_1]``.

Usage::

    tok = Ml4mTextTokenizer.load("text_tokenizer_4m_wordpiece_30k.json")
    tok.sequence_ids("det", [{"box": [0.1, 0.2, 0.5, 0.8], "label": "dog"}])   # ml-4m's ids
    ids, lengths = tok.encode_modality("caption", ["a dog on a sofa"], max_length=256)
    tok.decode_modality("det", ids)                                           # -> boxes

ml-4m's tokenizer file is turned into a fourm tokenizer directory (``tokenizer.json`` + ``config.json``,
format ``ml4m-wordpiece``) by :func:`fourm.convert.ml4m_text.convert_ml4m_text`.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fourm.errors import FourmError

FORMAT = "ml4m-wordpiece"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
PAD, UNK, SOS, EOS = "[PAD]", "[UNK]", "[SOS]", "[EOS]"
SPECIAL_TOKENS = (PAD, UNK, SOS, EOS)
VALUE_FAMILIES = ("v0", "v1", "v2", "v3")
MODALITIES = ("caption", "det", "metadata", "color_palette", "human_poses", "sam_instance")
SERIALIZED = ("caption", "det", "metadata", "color_palette")  # the others are given as text
# max_tokens of ml-4m's masking (tokens of a whole sequence with [EOS]); FM tables may be shorter
MAX_TOKENS = {"caption": 256, "det": 256, "metadata": 40, "color_palette": 23, "human_poses": 275, "sam_instance": 290}
DET_SCORE_THRESHOLD = 0.6
IMAGE_DIM_BIN = 32
VALUE_RANGE = (0, 999)  # metadata integers are clamped to the value tokens' range

_SENTINEL_RE = re.compile(r"^\[S_(\d+)\]$")
_VALUE_RE = re.compile(r"^v([0-3])=(\d+)$")


@dataclass(frozen=True)
class MetadataKey:
    """How one metadata entry is binned: ``index`` is its ``v1=`` id.

    kinds: ``image_dim`` (pixels // 32), ``int`` (clamped to 0..999), ``range`` (``int`` of the
    position in [lo, hi] times ``bins - 1``), ``edges`` (number of ``edges`` <= value)."""

    index: int
    kind: str
    lo: float = 0.0
    hi: float = 1.0
    bins: int = 50
    edges: tuple[float, ...] = ()
    values: tuple[float, ...] = ()  # edges: a value inside each bin (what decoding returns)


def _range(index: int, lo: float, hi: float) -> MetadataKey:
    return MetadataKey(index, "range", lo, hi, 50)


# ml-4m's metadata keys (v1= ids fixed, so the vocabulary never depends on the data)
METADATA_KEYS: dict[str, MetadataKey] = {
    "original_width": MetadataKey(0, "image_dim"),
    "original_height": MetadataKey(1, "image_dim"),
    "caption_n_chars": MetadataKey(2, "int"),
    "caption_n_words": MetadataKey(3, "int"),
    "caption_n_sentences": MetadataKey(4, "int"),
    "n_humans": MetadataKey(5, "int"),
    "n_sam_instances": MetadataKey(6, "int"),
    "n_coco_instances": MetadataKey(7, "int"),
    "coco_instance_diversity": MetadataKey(8, "int"),
    "colorfulness": _range(9, 0, 150),
    "brightness": _range(10, 0, 255),
    "contrast": _range(11, 0, 127),
    "saturation": _range(12, 0, 255),
    "entropy": _range(13, 0, 10),
    "walkability": _range(14, 0, 1),
    "objectness": _range(15, 0, 1),
    "semantic_diversity": MetadataKey(16, "int"),
    "geometric_complexity": _range(17, 0, 0.75),
    "occlusion_score": _range(18, 0, 0.25),
    "watermark_score": MetadataKey(19, "edges", edges=(0.5,), values=(0.25, 0.75)),
    "aesthetic_score": MetadataKey(20, "edges", edges=(4.5, 5.5), values=(4.0, 5.0, 6.0)),
}
_METADATA_BY_INDEX = {k.index: name for name, k in METADATA_KEYS.items()}


# ------------------------------------------------------------------------------------ serialisers
def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise FourmError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise FourmError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _label(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.split():
        raise FourmError(f"{what} must be a non-empty string, got {value!r}")
    return " ".join(value.split())


def _box(item: Any, i: int) -> tuple[list[float], str, float | None]:
    """([xmin, ymin, xmax, ymax], label, score or None) of a box given as a dict or a sequence."""
    what = f"box {i}"
    if isinstance(item, Mapping):
        coords = item.get("box", item.get("boxes"))
        label = item.get("label", item.get("class_name"))
        score = item.get("score")
        unknown = sorted(set(item) - {"box", "boxes", "label", "class_name", "score"})
        if unknown:
            raise FourmError(f"{what}: unknown field(s) {', '.join(map(str, unknown))} (expected box, label, score)")
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (5, 6):
        coords, label, score = list(item[:4]), item[4], (item[5] if len(item) == 6 else None)
    else:
        raise FourmError(f"{what} must be {{'box': [xmin, ymin, xmax, ymax], 'label': str[, 'score': float]}} "
                         f"or (xmin, ymin, xmax, ymax, label[, score]), got {item!r:.80}")
    if not isinstance(coords, Sequence) or isinstance(coords, str) or len(coords) != 4:
        raise FourmError(f"{what}: expected 4 coordinates [xmin, ymin, xmax, ymax], got {coords!r:.80}")
    xy = [_real(v, f"{what} coordinate") for v in coords]
    if not all(0.0 <= v <= 1.0 for v in xy):
        raise FourmError(f"{what}: coordinates must be in [0, 1] (relative to the image), got {xy}")
    return xy, _label(label, f"{what} label"), None if score is None else _real(score, f"{what} score")


def det_to_text(boxes: Sequence[Any], bins: int = 1000, score_threshold: float | None = DET_SCORE_THRESHOLD,
                order: str = "origin") -> str:
    """Boxes -> ml-4m's ``det`` text. A box is ``{"box": [xmin, ymin, xmax, ymax], "label": str,
    "score": float}`` (or ``"boxes"`` / ``"class_name"``, ml-4m's names; or a tuple). Boxes without a
    score are kept; ``score_threshold=None`` keeps all. ``order="origin"`` sorts by the distance of
    (xmin, ymin) to the origin (ml-4m's default), ``"given"`` keeps the order."""
    if isinstance(boxes, (str, Mapping)) or not isinstance(boxes, Sequence):
        raise FourmError(f"det value must be a list of boxes, got {type(boxes).__name__}")
    if order not in ("origin", "given"):
        raise FourmError(f"box order must be 'origin' or 'given', got {order!r}")
    parsed = [_box(b, i) for i, b in enumerate(boxes)]
    if score_threshold is not None:
        parsed = [p for p in parsed if p[2] is None or p[2] >= score_threshold]
    if order == "origin":
        parsed = sorted(parsed, key=lambda p: p[0][0] ** 2 + p[0][1] ** 2)
    words = []
    for (x0, y0, x1, y1), label, _ in parsed:
        words += [f"v0={round(x0 * (bins - 1))}", f"v1={round(y0 * (bins - 1))}",
                  f"v2={round(x1 * (bins - 1))}", f"v3={round(y1 * (bins - 1))}", label]
    return " ".join(words)


def _value_token(word: str) -> tuple[int, int] | None:
    m = _VALUE_RE.match(word)
    return (int(m.group(1)), int(m.group(2))) if m else None


def text_to_det(text: str, bins: int = 1000, strict: bool = True,
                failures: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """``det`` text -> ``[{"box": [xmin, ymin, xmax, ymax], "label": str}]`` (coordinates bin / (B - 1)).
    ``strict=False`` skips malformed boxes (model outputs) instead of raising; ``failures`` (a list)
    then receives ``(group text, why)`` for each skipped one."""
    groups: list[list[str]] = []
    for word in text.split():
        tok = _value_token(word)
        if tok is not None and tok[0] == 0 or not groups:
            groups.append([])
        groups[-1].append(word)
    out = []
    for group in groups:
        coords = [_value_token(w) for w in group[:4]]
        label = group[4:]
        if (len(coords) == 4 and all(c is not None and c[0] == k for k, c in enumerate(coords))
                and label and all(_value_token(w) is None for w in label)):
            out.append({"box": [c[1] / (bins - 1) for c in coords], "label": " ".join(label)})
        else:
            error = f"malformed det text at {' '.join(group)!r:.80} (expected v0=<x> v1=<y> v2=<x> v3=<y> <label> per box)"
            if strict:
                raise FourmError(error)
            if failures is not None:
                failures.append((" ".join(group), "expected v0=<x> v1=<y> v2=<x> v3=<y> <label>"))
    return out


def metadata_to_chunks(metadata: Mapping[str, Any], order: str = "given") -> list[str]:
    """Metadata -> one ``v1=<key id> v0=<bin>`` string per entry, in the dict's order (``"given"``;
    ml-4m shuffles during training) or by key id (``"canonical"``)."""
    if not isinstance(metadata, Mapping):
        raise FourmError(f"metadata must be a mapping of key -> value, got {type(metadata).__name__}")
    if order not in ("given", "canonical"):
        raise FourmError(f"metadata order must be 'given' or 'canonical', got {order!r}")
    unknown = sorted(str(k) for k in metadata if k not in METADATA_KEYS)
    if unknown:
        raise FourmError(f"unknown metadata key(s) {', '.join(unknown)} (known: {', '.join(METADATA_KEYS)})")
    keys = list(metadata) if order == "given" else sorted(metadata, key=lambda k: METADATA_KEYS[k].index)
    lo, hi = VALUE_RANGE
    chunks = []
    for key in keys:
        spec, value = METADATA_KEYS[key], metadata[key]
        if spec.kind == "image_dim":
            b = max(lo, min(_integer(value, f"metadata '{key}'") // IMAGE_DIM_BIN, hi))
        elif spec.kind == "int":
            b = max(lo, min(_integer(value, f"metadata '{key}'"), hi))
        elif spec.kind == "edges":
            v = _real(value, f"metadata '{key}'")
            b = next((i for i, e in enumerate(spec.edges) if v < e), len(spec.edges))
        else:
            v = max(spec.lo, min(_real(value, f"metadata '{key}'"), spec.hi))
            b = int((v - spec.lo) / (spec.hi - spec.lo) * (spec.bins - 1))
        chunks.append(f"v1={spec.index} v0={b}")
    return chunks


def metadata_to_text(metadata: Mapping[str, Any], order: str = "given") -> str:
    return " ".join(metadata_to_chunks(metadata, order))


def _metadata_value(key: str, b: int) -> float | int:
    spec = METADATA_KEYS[key]
    if spec.kind == "image_dim":
        return b * IMAGE_DIM_BIN
    if spec.kind == "int":
        return b
    if spec.kind == "edges":
        if b >= len(spec.values):
            raise FourmError(f"metadata '{key}' has {len(spec.values)} bins, got bin {b}")
        return spec.values[b]
    if b >= spec.bins:
        raise FourmError(f"metadata '{key}' has {spec.bins} bins, got bin {b}")
    return min(spec.hi, spec.lo + (b + 0.5) / (spec.bins - 1) * (spec.hi - spec.lo))  # inside bin b


def text_to_metadata(text: str, strict: bool = True, failures: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """``metadata`` text -> {key: value}: pixels for image sizes (bin * 32), integers as is, a value
    inside the bin for the others (re-serialising gives the same text). ``strict=False`` skips
    malformed entries (``failures``, a list, then receives ``(text, why)`` for each skipped word)."""
    words, out, i = text.split(), {}, 0
    while i < len(words):
        key_tok = _value_token(words[i])
        val_tok = _value_token(words[i + 1]) if i + 1 < len(words) else None
        try:
            if not key_tok or key_tok[0] != 1 or not val_tok or val_tok[0] != 0:
                raise FourmError(f"malformed metadata text at {' '.join(words[i:i + 2])!r} (expected v1=<key> v0=<value>)")
            if key_tok[1] not in _METADATA_BY_INDEX:
                raise FourmError(f"unknown metadata key id v1={key_tok[1]}")
            key = _METADATA_BY_INDEX[key_tok[1]]
            out[key] = _metadata_value(key, val_tok[1])
            i += 2
        except FourmError as e:
            if strict:
                raise
            if failures is not None:
                failures.append((words[i], str(e)))
            i += 1
    return out


def palette_to_text(colors: Sequence[Any]) -> str:
    """Colours ``[(r, g, b), ...]`` (0..255) -> ``v1=<n> v0=<r> v0=<g> v0=<b> ...``."""
    if isinstance(colors, (str, Mapping)) or not isinstance(colors, Sequence):
        raise FourmError(f"color_palette must be a list of (r, g, b) colours, got {type(colors).__name__}")
    values = []
    for i, c in enumerate(colors):
        if isinstance(c, (str, Mapping)) or not isinstance(c, Sequence) or len(c) != 3:
            raise FourmError(f"colour {i} must be (r, g, b), got {c!r:.60}")
        for v in c:
            v = _real(v, f"colour {i} channel")
            if not 0.0 <= v <= 255.0:
                raise FourmError(f"colour {i}: channels must be in [0, 255], got {list(c)}")
            values.append(v)
    return " ".join([f"v1={round(len(values) / 3)}"] + [f"v0={round(v)}" for v in values])


def text_to_palette(text: str, strict: bool = True,
                    failures: list[tuple[str, str]] | None = None) -> list[tuple[int, int, int]]:
    """``color_palette`` text -> ``[(r, g, b), ...]``; ``strict=False`` keeps the complete colours
    (``failures``, a list, then receives ``(text, why)`` when the text was not well-formed)."""
    words = text.split()
    head = _value_token(words[0]) if words else None
    values = [_value_token(w) for w in words[1:]]
    bad = not head or head[0] != 1 or any(v is None or v[0] != 0 or v[1] > 255 for v in values)
    if bad or len(values) != 3 * head[1]:
        if strict:
            raise FourmError(f"malformed color_palette text {text!r:.80} (expected v1=<n> then 3n v0=<0..255>)")
        if failures is not None and words:
            failures.append((text, "expected v1=<n> then 3n v0=<0..255>"))
    good = []
    for v in values:
        if v is None or v[0] != 0 or v[1] > 255:
            break
        good.append(v[1])
    n = len(good) // 3 if not head or head[0] != 1 else min(head[1], len(good) // 3)
    return [tuple(good[3 * k:3 * k + 3]) for k in range(n)]


# ------------------------------------------------------------------------------------ the tokenizer
class Ml4mTextTokenizer:
    """ml-4m's WordPiece tokenizer with its layout checked, 4M's serialisers and span masking."""

    def __init__(self, tokenizer: Any, where: str = "ml-4m text tokenizer"):
        self._tok = tokenizer
        self.where = where
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        if type(tokenizer.model).__name__ != "WordPiece":
            raise FourmError(f"{where}: expected a WordPiece tokenizer, got {type(tokenizer.model).__name__}")
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise FourmError(f"{where}: missing special token(s) {', '.join(missing)} (not an ml-4m text tokenizer)")
        if vocab[PAD] != 0:
            raise FourmError(f"{where}: [PAD] has id {vocab[PAD]}, expected 0 (ml-4m pads with id 0)")
        self.pad_id, self.unk_id, self.sos_id, self.eos_id = (vocab[t] for t in SPECIAL_TOKENS)
        n = 0
        while f"[S_{n}]" in vocab:
            n += 1
        extra = sorted(int(m.group(1)) for t in vocab if (m := _SENTINEL_RE.match(t)) and int(m.group(1)) >= n)
        if n < 3 or extra:
            raise FourmError(f"{where}: sentinels must be [S_0] .. [S_n-1] with n >= 3, found {n} in a row"
                             + (f" and stray [S_{extra[0]}]" if extra else ""))
        self.num_sentinels = n
        bins = []
        for fam in VALUE_FAMILIES:
            b = 0
            while f"{fam}={b}" in vocab:
                b += 1
            bins.append(b)
        if len(set(bins)) != 1 or bins[0] < 2:
            raise FourmError(f"{where}: value tokens v0=.. v3=.. must come in 4 families of equal size >= 2, got sizes {bins}")
        self.coord_bins = bins[0]
        self._sentinel_ids = [vocab[f"[S_{i}]"] for i in range(n)]
        self._sentinel_set = frozenset(self._sentinel_ids)
        layout = set(SPECIAL_TOKENS) | {f"[S_{i}]" for i in range(n)} | {f"{f}={b}" for f in VALUE_FAMILIES for b in range(bins[0])}
        added = tokenizer.get_added_tokens_decoder()
        self.object_classes = [t.content for _, t in sorted(added.items()) if t.content not in layout]

    # ---- loading / saving -------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> Ml4mTextTokenizer:
        """Read a Hugging Face ``tokenizer.json`` (e.g. ``text_tokenizer_4m_wordpiece_30k.json``)."""
        from tokenizers import Tokenizer

        from fourm.utils.config import read_json_object

        path = Path(path)
        read_json_object(path, "ml-4m text tokenizer")  # missing / binary / malformed: one line
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises plain Exception on malformed files
            raise FourmError(f"corrupt tokenizer file {path}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
        return cls(tok, where=str(path))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Ml4mTextTokenizer:
        """Load a directory written by :meth:`save_pretrained` (``tokenizer.json`` + ``config.json``)."""
        from fourm.utils.config import read_json_object

        path = Path(path)
        if not path.is_dir():
            raise FourmError(f"tokenizer directory not found: {path}")
        config = read_json_object(path / CONFIG_FILE, "tokenizer config")
        if config.get("format") != FORMAT:
            raise FourmError(f"{path} is not a converted ml-4m text tokenizer (config.json format is {config.get('format')!r})")
        tok = cls.from_file(path / TOKENIZER_FILE)
        if config != tok.describe():
            raise FourmError(f"{path}: {CONFIG_FILE} does not match {TOKENIZER_FILE} (expected {tok.describe()})")
        return tok

    @classmethod
    def load(cls, path: str | Path) -> Ml4mTextTokenizer:
        """A tokenizer file, a converted directory, or a directory holding ``tokenizer.json``."""
        path = Path(path).expanduser()
        if path.is_dir():
            if (path / CONFIG_FILE).is_file():
                return cls.from_pretrained(path)
            return cls.from_file(path / TOKENIZER_FILE)
        return cls.from_file(path)

    def describe(self) -> dict[str, Any]:
        """What ``config.json`` of a converted directory holds."""
        return {"format": FORMAT, "vocab_size": self.vocab_size, "num_sentinels": self.num_sentinels,
                "coord_bins": self.coord_bins, "object_classes": self.object_classes}

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``tokenizer.json`` (ml-4m's file, unchanged in meaning) + ``config.json`` into ``path``."""
        from fourm.utils.atomic import atomic_dir

        with atomic_dir(path) as tmp:
            self._tok.save(str(tmp / TOKENIZER_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(self.describe(), indent=2) + "\n")

    # ---- vocabulary -------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f"Ml4mTextTokenizer(vocab_size={self.vocab_size}, sentinels={self.num_sentinels}, "
                f"coord_bins={self.coord_bins}, object_classes={len(self.object_classes)})")

    def token_id(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        if i is None:
            raise FourmError(f"unknown token {token!r} (not in the vocabulary of {self.vocab_size} tokens)")
        return i

    def id_to_token(self, i: int) -> str:
        token = self._tok.id_to_token(int(i)) if int(i) >= 0 else None
        if token is None:
            raise FourmError(f"token id {i} out of range (vocabulary: 0..{self.vocab_size - 1})")
        return token

    @property
    def mask_id(self) -> int:
        """ml-4m's vocabulary has no [MASK]: the [PAD] id stands in where fourm asks for one (its
        samplers ban both; neither is ever a content token)."""
        return self.pad_id

    @property
    def sentinel_ids(self) -> list[int]:
        """Ids of ``[S_0]``, ``[S_1]``, ... in order."""
        return list(self._sentinel_ids)

    def sentinel_id(self, i: int) -> int:
        if not 0 <= i < self.num_sentinels:
            raise FourmError(f"sentinel [S_{i}] is not in the vocabulary (it has [S_0] .. [S_{self.num_sentinels - 1}])")
        return self._sentinel_ids[i]

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text).tokens

    def text_ids(self, text: str) -> list[int]:
        """Ids of one text, as ml-4m tokenizes it (no [SOS] / [EOS])."""
        if not isinstance(text, str):
            raise FourmError(f"expected a string, got {type(text).__name__}")
        return self._tok.encode(text).ids

    # ---- modalities -------------------------------------------------------------------------------
    def _check_modality(self, name: str) -> None:
        if name not in MODALITIES:
            raise FourmError(f"unknown ml-4m sequence modality '{name}' (known: {', '.join(MODALITIES)})")

    def _check_values(self, text: str) -> None:
        for word in text.split():
            v = _value_token(word)
            if v and v[1] >= self.coord_bins:
                raise FourmError(f"value token {word} is not in the vocabulary (it has v{v[0]}=0 .. v{v[0]}={self.coord_bins - 1})")

    def chunks(self, name: str, value: Any, **options: Any) -> list[str]:
        """The text pieces of one value that ml-4m tokenizes (one per metadata entry, else one).
        A string is taken as already serialised text (needed for ``human_poses`` / ``sam_instance``).
        ``options``: ``score_threshold`` / ``order`` for det, ``order`` for metadata."""
        self._check_modality(name)
        if isinstance(value, str):
            pieces = [value]
        elif name == "det":
            pieces = [det_to_text(value, self.coord_bins, **options)]
        elif name == "metadata":
            pieces = metadata_to_chunks(value, **options)
        elif name == "color_palette":
            pieces = [palette_to_text(value)]
        else:
            raise FourmError(f"'{name}' values must be given as text (fourm has no serialiser for {name}), "
                             f"got {type(value).__name__}")
        for p in pieces:
            self._check_values(p)
        return pieces

    def to_text(self, name: str, value: Any, **options: Any) -> str:
        return " ".join(self.chunks(name, value, **options))

    def sequence_ids(self, name: str, value: Any, max_tokens: int | None = None, **options: Any) -> list[int]:
        """The ids ml-4m feeds for one whole value: its tokens, then [EOS], cut to ``max_tokens``
        (default: the modality's, :data:`MAX_TOKENS`). Metadata entries are tokenized one by one and
        whole entries dropped when they do not fit."""
        limit = MAX_TOKENS[name] if max_tokens is None and name in MAX_TOKENS else max_tokens
        pieces = self.chunks(name, value, **options)
        if name == "metadata" and not isinstance(value, str):
            parts = [e.ids for e in self._tok.encode_batch(pieces)] + [[self.eos_id]]
            ids, total = [], 0
            for part in parts:
                total += len(part)
                if limit is None or total <= limit:
                    ids += part
            return ids
        ids = self._tok.encode(pieces[0]).ids + [self.eos_id]
        return ids if limit is None else ids[:limit]

    def encode_modality(self, name: str, values: Sequence[Any], max_length: int | None = None,
                        **options: Any) -> tuple[Tensor, Tensor]:
        """Values -> (ids (B, L) padded with [PAD], lengths (B,)): :meth:`sequence_ids` per value,
        ``L = max_length`` (default: the modality's max tokens)."""
        if isinstance(values, (str, Mapping)) or not isinstance(values, Sequence):
            raise FourmError(f"encode_modality expects a list of {name} values (one per sample)")
        length = max_length if max_length is not None else MAX_TOKENS.get(name)
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise FourmError(f"max_length must be a positive integer, got {max_length!r}")
        rows = [self.sequence_ids(name, v, length, **options) for v in values]
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return ids, lengths

    def decode(self, ids: Tensor | Sequence) -> list[str]:
        """Ids (B, L) (or one row) -> texts: stops at [EOS], drops [PAD] (special tokens kept, as
        ml-4m decodes)."""
        rows = ids.tolist() if hasattr(ids, "tolist") else [list(r) for r in ids]
        if rows and not isinstance(rows[0], (list, tuple)):
            rows = [rows]
        texts = []
        for row in rows:
            kept = []
            for t in (int(x) for x in row):
                if t == self.eos_id:
                    break
                if t == self.pad_id:
                    continue
                if not 0 <= t < self.vocab_size:
                    raise FourmError(f"token id {t} out of range (vocabulary: 0..{self.vocab_size - 1})")
                kept.append(t)
            texts.append(self._tok.decode(kept, skip_special_tokens=False))
        return texts

    def from_text(self, name: str, text: str, strict: bool = True, failures: list[tuple[str, str]] | None = None) -> Any:
        """Text of modality ``name`` -> its value; ``strict=False`` skips malformed groups (listed in
        ``failures`` as ``(text, why)`` if a list is given)."""
        self._check_modality(name)
        if name == "det":
            return text_to_det(text, self.coord_bins, strict, failures)
        if name == "metadata":
            return text_to_metadata(text, strict, failures)
        if name == "color_palette":
            return text_to_palette(text, strict, failures)
        return text

    def decode_modality(self, name: str, ids: Tensor | Sequence, strict: bool = False) -> list[Any]:
        """Ids (B, L) -> one value per row (sentinels removed; malformed groups skipped unless strict)."""
        self._check_modality(name)
        rows = ids.tolist() if hasattr(ids, "tolist") else [list(r) for r in ids]
        if rows and not isinstance(rows[0], (list, tuple)):
            rows = [rows]
        rows = [[t for t in r if t not in self._sentinel_set] for r in rows]
        return [self.from_text(name, text, strict) for text in self.decode(rows)]

    # ---- span masking -----------------------------------------------------------------------------
    def span_mask(self, ids: Sequence[int], masked: Sequence[bool]) -> tuple[list[int], list[int]]:
        """(input, target) of T5-style span masking: each run of masked ids becomes ``[S_k]``
        (k = 1, 2, ...) in the input; the target holds ``[S_k]`` + the run for each, then ``[S_{k+1}]``."""
        if len(ids) != len(masked):
            raise FourmError(f"span_mask: {len(ids)} ids but {len(masked)} mask values")
        inputs, targets, k, previous = [], [], 0, False
        for token, m in zip(ids, masked):
            if m and not previous:
                k += 1
                inputs.append(self.sentinel_id(k))
                targets.append(self.sentinel_id(k))
            (targets if m else inputs).append(int(token))
            previous = bool(m)
        targets.append(self.sentinel_id(k + 1))
        return inputs, targets

    def merge_spans(self, inputs: Sequence[int], targets: Sequence[int]) -> list[int]:
        """Inverse of :meth:`span_mask`: each sentinel of ``inputs`` replaced by its run in ``targets``."""
        runs: dict[int | None, list[int]] = {}
        current = None
        for t in targets:
            t = int(t)
            if t in self._sentinel_set:
                current = t
                runs.setdefault(t, [])
            else:
                runs.setdefault(current, []).append(t)
        out = []
        for t in inputs:
            t = int(t)
            out += runs.get(t, []) if t in self._sentinel_set else [t]
        return out
