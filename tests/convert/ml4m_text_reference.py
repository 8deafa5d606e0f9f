"""Test helper: a small WordPiece ``tokenizer.json`` laid out like ml-4m's released text tokenizer.

ml-4m's ``text_tokenizer_4m_wordpiece_30k.json`` starts with its added tokens, in this order: ``[PAD]
[UNK] [SOS] [EOS]``, the sentinels ``[S_0]`` .. ``[S_199]``, the value tokens ``v0=0`` .. ``v3=999``
(single words, not normalised), the 80 COCO class names (single words, normalised), then the learnt
WordPiece vocabulary; lower-casing BERT normaliser and pre-tokeniser, WordPiece decoder, no
post-processor. :func:`build_wordpiece` makes the same layout (sizes adjustable) with the
``tokenizers`` package, from a few captions.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

CORPUS = [
    "A photo of a dog on the sofa.",
    "two cats sleeping on a bed next to a tv",
    "a red car parked near the house, with a man holding a baseball bat",
    "people walking in the park on a sunny day",
]
CLASSES = ("baseball bat", "cat", "dog", "tv")


def build_wordpiece(path: Path, num_sentinels: int = 200, bins: int = 1000, classes=CLASSES, extra: int = 120,
                    specials=("[PAD]", "[UNK]", "[SOS]", "[EOS]"), corpus=CORPUS) -> Path:
    """A tokenizer.json laid out like ml-4m's: specials, [S_i], v0..v3 value tokens, class names, WordPiece."""
    special = list(specials)
    special += [AddedToken(f"[S_{i}]", single_word=True, normalized=False) for i in range(num_sentinels)]
    special += [AddedToken(f"v{k}={i}", single_word=True, normalized=False) for k in range(4) for i in range(bins)]
    special += [AddedToken(c, single_word=True, normalized=True) for c in classes]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=len(special) + extra, min_frequency=0, show_progress=False,
                                        continuing_subword_prefix="##", special_tokens=special)
    tok.train_from_iterator(corpus, trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path
