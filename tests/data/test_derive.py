"""Derived modalities: Canny edges, colour palette, image statistics, add_derived."""

import numpy as np
import pytest

from fourm.data.derive import add_derived, canny_edges, color_palette, image_metadata, parse_derive
from fourm.data.derive.edges import gaussian_blur
from fourm.errors import FourmError


def _square(size=32, lo=8, hi=24, fg=(220, 50, 40), bg=(30, 60, 120)):
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    img[lo:hi, lo:hi] = fg
    return img


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` (Chebyshev) of the boundary of a boolean mask."""
    h, w = mask.shape
    near = np.zeros_like(mask)
    p = np.pad(mask, width, mode="edge")
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            near |= p[width + dy : width + dy + h, width + dx : width + dx + w] != mask
    return near


def test_canny_square_border_only():
    img = _square()
    edges = canny_edges(img)
    assert edges.dtype == np.uint8 and set(np.unique(edges)) <= {0, 1}
    inside = np.zeros((32, 32), bool)
    inside[8:24, 8:24] = True
    border = _ring(inside, 1)
    assert edges[~border].sum() == 0  # nothing inside the square or far outside it
    # every side of the square is traced: each row/column crossing the square's sides has an edge
    for k in range(11, 21):
        assert edges[k, 6:10].any() and edges[k, 22:26].any()
        assert edges[6:10, k].any() and edges[22:26, k].any()
    # the edge is thin: one pixel across each side
    assert edges[16, :].sum() == 2 and edges[:, 16].sum() == 2


def test_canny_isoluminant_and_flat():
    # red vs green of (nearly) equal luma: found through the per-channel gradient
    img = _square(fg=(200, 0, 0), bg=(0, 102, 0))
    assert canny_edges(img)[16].sum() == 2
    assert canny_edges(np.full((16, 16, 3), 77, np.uint8)).sum() == 0
    # a weak step (contrast 0.05 < low) gives nothing; a strong one in grey input is found
    grey = np.zeros((16, 16), np.uint8)
    grey[:, 8:] = 13
    assert canny_edges(grey).sum() == 0
    grey[:, 8:] = 200
    assert canny_edges(grey)[:, 6:10].any(axis=1).all()
    with pytest.raises(FourmError, match="low <= high"):
        canny_edges(img, low=0.5, high=0.1)


def test_gaussian_blur_matches_reference():
    rng = np.random.default_rng(0)
    img = rng.random((12, 12)).astype(np.float32)
    out = gaussian_blur(img, 1.0)
    # reference: direct 2-D sum with the same (normalised, radius 3) kernel and reflect padding
    x = np.arange(-3, 4)
    k = np.exp(-0.5 * x**2)
    k /= k.sum()
    p = np.pad(img.astype(np.float64), 3, mode="reflect")
    ref = sum(k[i] * k[j] * p[i : i + 12, j : j + 12] for i in range(7) for j in range(7))
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_palette_recovers_colours():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:] = (20, 40, 200)  # 40 * 20 px
    img[:15] = (250, 240, 10)  # 15 * 40 px
    img[30:, 30:] = (200, 0, 0)  # 10 * 10 px
    assert color_palette(img, k=5) == [[20, 40, 200], [250, 240, 10], [200, 0, 0]]
    noisy = np.clip(img.astype(int) + np.random.default_rng(1).integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    pal = color_palette(noisy, k=3)
    assert len(pal) == 3
    for got, want in zip(pal, [[20, 40, 200], [250, 240, 10], [200, 0, 0]]):
        assert np.abs(np.array(got) - want).max() <= 4
    assert color_palette(noisy, k=3, seed=5) == color_palette(noisy, k=3, seed=5)  # deterministic


def test_palette_subsamples_large_images():
    img = np.zeros((200, 200, 3), np.uint8)
    img[:, :120] = (255, 255, 255)
    img[:, 120:] = (0, 0, 255)
    img[0, 0] = (1, 2, 3)  # a third, rare colour forces k-means (> k distinct colours)
    pal = color_palette(img, k=2)
    assert np.abs(np.array(pal[0]) - [255, 255, 255]).max() <= 2
    assert np.abs(np.array(pal[1]) - [0, 0, 255]).max() <= 2


def test_metadata_constant_images():
    grey = image_metadata(np.full((16, 16, 3), 128, np.uint8))
    assert grey["brightness"] == pytest.approx(128 / 255, abs=1e-4)
    for key in ("contrast", "saturation", "colorfulness", "warmth", "entropy", "sharpness"):
        assert grey[key] == 0.0, key
    red = image_metadata(np.full((16, 16, 3), (255, 0, 0), np.uint8))
    assert red["brightness"] == pytest.approx(0.299, abs=1e-4)
    assert red["saturation"] == 1.0 and red["warmth"] == 1.0 and red["contrast"] == 0.0
    # Hasler-Suesstrunk on a constant image: 0.3 * |(mean rg, mean yb)| = 0.3 * sqrt(1 + 0.25)
    assert red["colorfulness"] == pytest.approx(0.3 * np.sqrt(1.25), abs=1e-4)
    assert all(isinstance(v, float) for v in red.values())


def test_metadata_against_references():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    md = image_metadata(img)
    x = img.astype(np.float64) / 255
    luma = x @ [0.299, 0.587, 0.114]
    assert md["brightness"] == pytest.approx(luma.mean(), abs=1e-4)
    assert md["contrast"] == pytest.approx(luma.std(), abs=1e-4)
    sat = (x.max(-1) - x.min(-1)) / np.maximum(x.max(-1), 1e-3)
    assert md["saturation"] == pytest.approx(sat.mean(), abs=1e-4)
    lap = luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1]
    assert md["sharpness"] == pytest.approx(lap.var(), abs=1e-4)
    hist = np.bincount(np.rint(luma * 255).astype(int).ravel(), minlength=256) / luma.size
    p = hist[hist > 0]
    assert md["entropy"] == pytest.approx(-(p * np.log2(p)).sum() / 8, abs=1e-3)
    # two equally common grey levels: exactly 1 bit
    half = np.zeros((8, 8, 3), np.uint8)
    half[:, 4:] = 255
    assert image_metadata(half)["entropy"] == pytest.approx(1 / 8)


def test_add_derived_fills_missing_and_merges_metadata():
    img = _square()
    sample = {"id": "a", "rgb": img, "metadata": {"brightness": -1.0, "objects": 2}}
    out = add_derived(sample)
    assert "edges" not in sample  # the input is not modified
    np.testing.assert_array_equal(out["edges"], canny_edges(img))
    assert out["color_palette"] == color_palette(img)
    assert out["metadata"]["brightness"] == -1.0 and out["metadata"]["objects"] == 2  # never overwritten
    assert out["metadata"]["saturation"] == image_metadata(img)["saturation"]
    kept = add_derived({"id": "b", "rgb": img, "edges": np.ones((32, 32), np.uint8)}, which=("edges",))
    assert kept["edges"].sum() == 32 * 32 and set(kept) == {"id", "rgb", "edges"}
    with pytest.raises(FourmError, match="has no 'rgb'"):
        add_derived({"id": "c", "depth": np.zeros((4, 4), np.float32)})
    with pytest.raises(FourmError, match="cannot derive modality 'depth'"):
        parse_derive("edges,depth")
    assert parse_derive(" edges, metadata,edges ") == ("edges", "metadata")
