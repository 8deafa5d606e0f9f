"""T5-style span masking: exact layout, round trip, sentinel order, shifted decoder input, statistics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fourm.data.masking.spans import (
    SequenceSpecialTokens,
    apply_spans,
    span_layout,
    span_mask,
    unmask_spans,
)
from fourm.errors import FourmError

SP = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 11)))  # S_0..S_7 = 3..10


def test_documented_example():
    seq = np.array([20, 21, 22, 23, 24, 25, 2])
    out = apply_spans(seq, np.array([1, 5]), np.array([2, 1]), SP)
    assert out.encoder_input.tolist() == [20, 3, 23, 24, 4, 2]
    assert out.decoder_target.tolist() == [3, 21, 22, 4, 25, 2]
    assert out.decoder_input.tolist() == [1, 3, 21, 22, 4, 25]
    assert (out.num_spans, out.num_masked) == (2, 3)
    assert unmask_spans(out.encoder_input, out.decoder_target, SP).tolist() == seq.tolist()


@settings(max_examples=200, deadline=None)
@given(
    content=st.lists(st.integers(11, 99), min_size=1, max_size=40),
    density=st.floats(0.01, 1.0),
    mean_span=st.floats(1.0, 6.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_and_structure(content, density, mean_span, seed):
    seq = np.array(content + [SP.eos])
    out = span_mask(seq, density, mean_span, SP, np.random.default_rng(seed))
    # input + target reconstruct the sequence exactly
    assert unmask_spans(out.encoder_input, out.decoder_target, SP).tolist() == seq.tolist()
    # sentinels appear in order S_0, S_1, ... in both encoder input and decoder target
    enc_sent = [t for t in out.encoder_input.tolist() if t in SP.sentinels]
    dec_sent = [t for t in out.decoder_target.tolist() if t in SP.sentinels]
    assert enc_sent == dec_sent == SP.sentinels[: out.num_spans]
    assert out.decoder_target[0] == SP.sentinels[0] and out.decoder_target[-1] == SP.eos
    assert out.encoder_input[-1] == SP.eos
    # decoder input is the target shifted right, starting with [SOS]
    assert out.decoder_input.tolist() == [SP.sos] + out.decoder_target[:-1].tolist()
    # token accounting: masked count follows the density; lengths add up
    n = len(content)
    assert out.num_masked == min(max(round(n * density), 1), n)
    assert len(out.encoder_input) == n - out.num_masked + out.num_spans + 1
    assert len(out.decoder_target) == out.num_masked + out.num_spans + 1


@settings(max_examples=100, deadline=None)
@given(length=st.integers(1, 60), density=st.floats(0.05, 1.0), seed=st.integers(0, 10**6))
def test_layout_spans_are_separated_and_in_range(length, density, seed):
    starts, lengths = span_layout(length, density, 3.0, 8, np.random.default_rng(seed))
    assert (lengths >= 1).all() and len(starts) <= 8
    assert starts[0] >= 0 and starts[-1] + lengths[-1] <= length
    assert (starts[1:] > starts[:-1] + lengths[:-1]).all()  # a visible token between spans


def test_mean_span_length_and_density_statistics():
    rng = np.random.default_rng(0)
    specials = SequenceSpecialTokens(0, 1, 2, list(range(3, 103)))
    span_lengths, masked = [], []
    for _ in range(300):
        out = span_mask(np.arange(200, 400), 0.3, 4.0, specials, rng)
        span_lengths.append(out.num_masked / out.num_spans)
        masked.append(out.num_masked)
    assert np.mean(masked) == 60
    assert abs(np.mean(span_lengths) - 4.0) < 0.1


def test_every_position_can_be_masked():
    rng = np.random.default_rng(1)
    hit = np.zeros(10, dtype=bool)
    for _ in range(200):
        starts, lengths = span_layout(10, 0.2, 1.0, 8, rng)
        for s, n in zip(starts, lengths):
            hit[s : s + n] = True
    assert hit.all()


def test_full_masking_leaves_one_sentinel():
    out = span_mask(np.array([30, 31, 32, 2]), 1.0, 3.0, SP, np.random.default_rng(0))
    assert out.encoder_input.tolist() == [SP.sentinels[0], SP.eos]
    assert out.decoder_target.tolist() == [SP.sentinels[0], 30, 31, 32, SP.eos]


def test_span_count_limited_by_sentinels():
    few = SequenceSpecialTokens(0, 1, 2, [3, 4])
    out = span_mask(np.arange(20, 80), 0.5, 1.0, few, np.random.default_rng(0))
    assert out.num_spans == 2
    assert unmask_spans(out.encoder_input, out.decoder_target, few).tolist() == list(range(20, 80)) + [2]


def test_unmask_errors_on_missing_span():
    out = apply_spans(np.array([20, 21, 22, 23, 24, 2]), np.array([0, 3]), np.array([1, 1]), SP)
    truncated = out.decoder_target[:2]  # [S_0, 20]: S_1's span is gone
    with pytest.raises(FourmError, match="S_1"):
        unmask_spans(out.encoder_input, truncated, SP)
    with pytest.raises(FourmError, match="start with a sentinel"):
        unmask_spans(out.encoder_input, np.array([20, 3]), SP)


def test_special_token_validation():
    with pytest.raises(FourmError, match="sentinels"):
        SequenceSpecialTokens(0, 1, 2, [])
    with pytest.raises(FourmError, match="distinct"):
        SequenceSpecialTokens(0, 1, 2, [2, 3])
    assert SequenceSpecialTokens.from_dict({"pad": 0, "sos": 1, "eos": 2, "sentinels": [5]}).sentinels == [5]


def test_layout_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(FourmError, match="content tokens"):
        span_layout(0, 0.5, 3.0, 4, rng)
    with pytest.raises(FourmError, match="noise_density"):
        span_layout(5, 0.0, 3.0, 4, rng)
    with pytest.raises(FourmError, match="mean_span_length"):
        span_layout(5, 0.5, 0.5, 4, rng)
