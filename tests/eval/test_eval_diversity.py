"""fourm.eval.diversity: different-caption vs same-caption pixel distances against a plain loop."""

import itertools

import numpy as np
import pytest

from fourm.errors import FourmError
from fourm.eval.diversity import caption_diversity, format_diversity, pairwise_l1


def reference(images):
    """The definition, pair by pair: mean |a - b| / 255 over pairs of different / same prompts."""
    p, s = images.shape[:2]
    flat = images.reshape(p, s, -1).astype(np.float64) / 255.0
    diff, same = [], []
    for (i, a), (j, b) in itertools.combinations(itertools.product(range(p), range(s)), 2):
        d = np.abs(flat[i, a] - flat[j, b]).mean()
        (same if i == j else diff).append(d)
    return float(np.mean(diff)), float(np.mean(same))


def test_matches_the_pairwise_loop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 6, 7, 3), dtype=np.uint8)
    out = caption_diversity(images)
    diff, same = reference(images)
    assert out["different"] == pytest.approx(diff, rel=1e-6)
    assert out["same"] == pytest.approx(same, rel=1e-6)
    assert out["ratio"] == pytest.approx(diff / same, rel=1e-6)
    assert (out["prompts"], out["samples"]) == (5, 3)


def test_chunked_distances_equal_one_block():
    x = np.random.default_rng(1).random((9, 20), dtype=np.float32)
    full = np.abs(x[:, None] - x[None]).mean(-1)
    np.testing.assert_allclose(pairwise_l1(x, max_floats=1), full, rtol=1e-6)  # one row at a time
    np.testing.assert_allclose(pairwise_l1(x), full, rtol=1e-6)


def test_caption_dependent_vs_ignored_condition():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, size=(6, 1, 8, 8, 3)).astype(np.float64)
    noise = rng.normal(0, 8, size=(6, 4, 8, 8, 3))
    follows = np.clip(base + noise, 0, 255).astype(np.uint8)  # samples = the prompt's image + noise
    assert caption_diversity(follows)["ratio"] > 3
    ignores = rng.integers(0, 256, size=(6, 4, 8, 8, 3), dtype=np.uint8)  # one distribution for all
    assert caption_diversity(ignores)["ratio"] == pytest.approx(1.0, abs=0.05)


def test_float_images_and_reference():
    images = np.zeros((2, 2, 4, 4), dtype=np.float32)
    images[1] = 1.0
    images[0, 1, 0, 0] = 0.5
    real = np.stack([np.zeros((4, 4)), np.full((4, 4), 0.25)])
    out = caption_diversity(images, reference=real)
    assert out["same"] == pytest.approx((0.5 / 16 + 0.0) / 2)
    assert out["different"] == pytest.approx((1.0 + 1.0 + 2 * (1 - 0.5 / 16)) / 4)
    assert out["reference"] == pytest.approx(0.25)
    assert "ratio" in format_diversity(out) and "real images" in format_diversity(out)


@pytest.mark.parametrize(
    "shape, match",
    [((1, 3, 4, 4), ">= 2 prompts"), ((3, 1, 4, 4), ">= 2 samples"), ((3, 4, 4), "must have shape")],
)
def test_refuses_what_it_cannot_measure(shape, match):
    with pytest.raises(FourmError, match=match):
        caption_diversity(np.zeros(shape, dtype=np.uint8))


def test_reference_must_match():
    with pytest.raises(FourmError, match="reference has 3 images for 2 prompts"):
        caption_diversity(np.zeros((2, 2, 4, 4), np.uint8), reference=np.zeros((3, 4, 4), np.uint8))
