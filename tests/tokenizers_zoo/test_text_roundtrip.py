"""Captions survive tokenize -> ids -> decode word for word: WordPiece ``##`` pieces are joined onto
their word and words are spaced (no glued pieces such as "fileeriark"), also through the generation codec."""

from __future__ import annotations

import pytest

from fourm.codecs import SequenceCodec
from fourm.data.world import render_sample
from fourm.testing.bundles import toy_text_tokenizer

EXTRA = [
    "a file near the ark",  # short words a small vocabulary splits into pieces
    "unseen words: zebra, quokka and fileeriark!",
    "it's a 3d shape (mostly red); 50% blue",
]


@pytest.fixture(scope="module")
def tok():
    return toy_text_tokenizer(vocab_size=400)  # small: many words become several ## pieces


def test_captions_decode_to_the_same_words(tok):
    captions = [render_sample(index=i, seed=5)["caption"] for i in range(12)] + EXTRA
    pieces = [t for c in captions for t in tok.tokenize(c)]
    assert sum(t.startswith("##") for t in pieces) >= 10  # the test does exercise piece joining
    ids, _ = tok.encode(captions, max_length=400)
    decoded = tok.decode(ids)
    for caption, text in zip(captions, decoded):
        assert text == caption.lower(), (caption, text)
        assert text.split() == caption.lower().split()


def test_generation_codec_decodes_captions_word_for_word(tok):
    codec = SequenceCodec("caption", tok, 400)
    captions = [render_sample(index=i, seed=7)["caption"] for i in range(4)] + EXTRA[:2]
    assert codec.decode(codec.encode(captions)) == [c.lower() for c in captions]


def test_continuation_pieces_join_their_word(tok):
    word = tok.tokenize("fileeriark")
    assert len(word) > 1 and all(p.startswith("##") for p in word[1:])
    ids, lengths = tok.encode(["a fileeriark red"], max_length=40)
    assert int(lengths[0]) == len(tok.tokenize("a fileeriark red")) + 1 > 3  # pieces, then [EOS]
    assert tok.decode(ids) == ["a fileeriark red"]
