"""Grammar-constrained decoding of boxes and palettes: random logits always give sequences that
parse strictly; through the real autoregressive decoder (KV cache and not, batched, with a prefix)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fourm.errors import FourmError
from fourm.generation import (
    AutoregressiveSampler,
    EncoderInputs,
    GivenTokens,
    SequenceDecoder,
    encoder_inputs,
)
from fourm.generation.grammar import BoxGrammar, PaletteGrammar, grammar_for
from fourm.testing.bundles import toy_pipeline, toy_text_tokenizer
from tokenizers_zoo.text import serializers


@pytest.fixture(scope="module")
def tok():
    return toy_text_tokenizer()


def _random_step(vocab: int, seed: int, favour: list[int] | None = None, boost: float = 0.0):
    """A step function giving fresh random logits (B, k, V) every call; ``favour`` ids get ``boost``."""
    g = torch.Generator().manual_seed(seed)

    def step(inputs, positions):
        logits = torch.randn(inputs.shape[0], inputs.shape[1], vocab, generator=g) * 4
        if favour:
            logits[..., favour] += boost
        return logits

    return step


def _check_boxes(tok, tokens, valid, max_label=8):
    """Every row parses strictly; x0 <= x1, y0 <= y1; labels within the cap; no sentinel / special."""
    bins = tok.config.structured.coord_bins
    specials = {tok.pad_id, tok.sos_id, tok.mask_id, tok.unk_id, *tok.sentinel_ids}
    for row, ok in zip(tokens.tolist(), valid.tolist()):
        content = [t for t, v in zip(row, ok) if v and t != tok.eos_id]
        assert not specials & set(content)
        words = [tok.id_to_token(t) for t in content]
        # labels: runs of word pieces between coordinate tokens, at most max_label long
        run = 0
        for w in words:
            run = 0 if w.startswith("[") else run + 1
            assert run <= max_label
        (text,) = tok.decode([content])
        boxes = serializers.text_to_bboxes(text, bins, strict=True)  # raises if malformed
        for box in boxes:
            x0, y0, x1, y1 = box["box"]
            assert x0 <= x1 and y0 <= y1 and box["label"]
        assert len(boxes) == sum(1 for w in words if w.startswith("[x=")) // 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    length=st.integers(1, 40),
    temperature=st.sampled_from([0.0, 0.7, 1.0, 3.0]),
    boost=st.sampled_from([0.0, 8.0]),
)
def test_random_logits_always_give_parseable_boxes(tok, seed, length, temperature, boost):
    vocab = tok.vocab_size + 5  # a model vocabulary larger than the tokenizer's: the extra ids are never allowed
    # boost the tokens that break boxes without a grammar: sentinels, [UNK], '.', '##' pieces, [y=0]
    favour = [*tok.sentinel_ids, tok.unk_id, tok.token_id("."), tok.token_id("##le"), tok.token_id("[y=0]"), vocab - 1]
    grammar = BoxGrammar(tok, vocab, max_label_tokens=3)
    # as the pipeline runs it: special ids banned, no [EOS] first (where only [EOS] fits, the grammar wins)
    banned = [*tok.sentinel_ids, tok.mask_id, tok.sos_id, tok.pad_id]
    sampler = AutoregressiveSampler(
        temperature=temperature, eos=tok.eos_id, pad=tok.pad_id, banned=banned, min_length=1, processor=grammar
    )
    out = sampler.generate(
        _random_step(vocab, seed, favour, boost), batch_size=6, length=length, generator=torch.Generator().manual_seed(seed)
    )
    _check_boxes(tok, out.tokens, out.valid, max_label=3)
    if length < 5:  # no box fits: only [EOS], despite min_length
        assert (out.tokens[:, 0] == tok.eos_id).all()
    else:  # min_length 1: never empty
        assert (out.tokens[:, 0] != tok.eos_id).all()


def test_without_grammar_random_logits_break_boxes(tok):
    """The same random logits without the grammar: malformed groups (the grammar is what fixes them)."""
    vocab, failures = tok.vocab_size, []
    out = AutoregressiveSampler(temperature=1.0, eos=tok.eos_id).generate(
        _random_step(vocab, 0), batch_size=8, length=30, generator=torch.Generator().manual_seed(0)
    )
    for text in tok.decode(out.tokens):
        serializers.text_to_bboxes(text, tok.config.structured.coord_bins, strict=False, failures=failures)
    assert failures and all(set(f) and isinstance(f[1], str) for f in failures)


def test_eos_only_after_a_complete_box_and_label_cap(tok):
    vocab = tok.vocab_size
    grammar = BoxGrammar(tok, vocab, max_label_tokens=2)
    grammar.start(torch.zeros(1, 0, dtype=torch.long), length=20)
    eos, red, x3, y5, x1 = (tok.token_id(t) for t in ("[EOS]", "red", "[x=3]", "[y=5]", "[x=1]"))
    assert grammar.allowed(0)[0, eos] and grammar.allowed(0)[0, red]  # empty list, or a label
    assert not grammar.allowed(0)[0, x3] and not grammar.allowed(0)[0, tok.token_id("##le")]
    grammar.advance(torch.tensor([red]))
    assert not grammar.allowed(1)[0, eos] and grammar.allowed(1)[0, red] and grammar.allowed(1)[0, x3]
    grammar.advance(torch.tensor([red]))
    allowed = grammar.allowed(2)[0]
    assert not allowed[red] and allowed[x3]  # label cap reached: coordinates only
    for tid in (x3, y5):
        grammar.advance(torch.tensor([tid]))
    allowed = grammar.allowed(4)[0]
    assert not allowed[x1] and allowed[x3] and allowed[tok.token_id("[x=4]")]  # x1 >= x0
    grammar.advance(torch.tensor([x3]))
    allowed = grammar.allowed(5)[0]
    assert not allowed[tok.token_id("[y=4]")] and allowed[y5] and not allowed[eos]  # y1 >= y0
    grammar.advance(torch.tensor([y5]))
    assert grammar.allowed(6)[0, eos]
    # near the end a new label is refused (its 4 coordinates would not fit): [EOS] only
    assert grammar.allowed(16)[0].nonzero().flatten().tolist() == [eos]


def test_malformed_prefix_restarts_and_well_formed_prefix_continues(tok):
    vocab = tok.vocab_size
    ids = [tok.token_id(t) for t in ("circle", "[x=3]", "[y=5]", "[x=9]", "[y=9]", "red")]
    grammar = BoxGrammar(tok, vocab)
    grammar.start(torch.tensor([ids, ids[:3] + [ids[0]] * 3]), length=30)
    assert grammar.phase.tolist() == [1, 1]  # both in a label (the second restarted at the stray label)
    allowed = grammar.allowed(6)
    assert allowed[:, tok.token_id("[x=0]")].all() and not allowed[:, tok.eos_id].any()


def test_palette_grammar(tok):
    vocab = tok.vocab_size
    cfg = tok.config.structured
    grammar = PaletteGrammar(tok, vocab)
    for seed in range(5):
        for length in (1, 4, 12, 30):
            out = AutoregressiveSampler(temperature=1.0, eos=tok.eos_id, processor=grammar).generate(
                _random_step(vocab, seed), batch_size=4, length=length, generator=torch.Generator().manual_seed(seed)
            )
            for text in tok.decode(out.tokens):
                colors = serializers.text_to_palette(text, cfg.color_levels, cfg.max_palette_size, strict=True)
                assert 3 * len(colors) + 1 <= length


def test_grammar_for_and_errors(tok):
    assert isinstance(grammar_for("bboxes", tok, tok.vocab_size), BoxGrammar)
    assert isinstance(grammar_for("color_palette", tok, tok.vocab_size), PaletteGrammar)
    assert grammar_for("caption", tok, tok.vocab_size) is None
    with pytest.raises(FourmError, match="more than the model's"):
        BoxGrammar(tok, tok.vocab_size - 1)
    with pytest.raises(FourmError, match="needs an \\[EOS\\]"):
        AutoregressiveSampler(eos=None, processor=BoxGrammar(tok, tok.vocab_size))


# ------------------------------------------------------------------------------ the real decoder


@pytest.fixture(scope="module")
def pipe():
    p = toy_pipeline(modalities=("rgb", "caption", "bboxes", "color_palette"))
    p.autocast = False
    return p


@pytest.mark.parametrize("use_cache", [True, False])
def test_real_decoder_batched_with_prefix(pipe, use_cache):
    model, tok = pipe.model, pipe.codecs["bboxes"].tokenizer
    caption = pipe.tokenize("caption", ["a small red circle"])
    given_caption = GivenTokens.sequence(caption, eos=tok.eos_id, pad=tok.pad_id).expand(6)
    passes = EncoderInputs.stack([encoder_inputs(model.config, {"caption": given_caption}, 6)])
    prefix = pipe.tokenize("bboxes", ["circle 0.1 0.1 0.4 0.4"], prefix=True)  # one complete box
    for start in (None, prefix):
        decoder = SequenceDecoder(model, "bboxes", passes, [1.0], use_cache=use_cache)
        sampler = AutoregressiveSampler(
            temperature=2.0, eos=tok.eos_id, pad=tok.pad_id, processor=pipe.grammar("bboxes")
        )
        out = sampler.generate(
            decoder, 6, 16, GivenTokens.at(start) if start is not None else None, torch.Generator().manual_seed(1)
        )
        _check_boxes(tok, out.tokens, out.valid)
        if start is not None:
            assert torch.equal(out.tokens[:, : start.shape[1]], start.expand(6, -1))


def test_pipeline_grammar_on_by_default_and_off_on_request(pipe):
    target = pipe.default_target("bboxes")
    assert target.grammar is True
    on = pipe.generate({"caption": "a small red circle"}, ["bboxes", "color_palette"], num_samples=8, seed=0, progress=False)
    assert all(f == [] for f in on.parse_failures["bboxes"]) and all(f == [] for f in on.parse_failures["color_palette"])
    _check_boxes(pipe.codecs["bboxes"].tokenizer, on.tokens["bboxes"], on.tokens["bboxes"] != 0)
    # the random toy model without the grammar writes malformed boxes: reported, not silent
    off = pipe.generate(
        {"caption": "a small red circle"}, [pipe.default_target("bboxes", grammar=False, temperature=2.0)],
        num_samples=8, seed=0, progress=False,
    )  # fmt: skip
    failed = [f for per_sample in off.parse_failures["bboxes"] for f in per_sample]
    assert failed and all(set(f) == {"text", "error"} and f["error"] for f in failed)
