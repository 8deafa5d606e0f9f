"""One image geometry for training data and generation conditions: import (fit_images) and
generation's load_image crop and resize a non-square image to the same pixels for every image kind;
edges keep thin lines when downscaled."""

import numpy as np
import pytest

from fourm.codecs.values import load_image
from fourm.data.user.geometry import fit_image, fit_images


def _images(h: int, w: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    edges = np.zeros((h, w), np.uint8)
    edges[:, w // 3] = 1  # a one-pixel vertical line
    edges[h // 2, :] = 1
    return {
        "rgb": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "depth": rng.random((h, w), dtype=np.float32),
        "semseg": rng.integers(0, 5, (h, w)).astype(np.uint8),
        "edges": edges,
    }


@pytest.mark.parametrize("shape", [(97, 130), (130, 97), (64, 64), (31, 45)])
def test_generation_conditions_match_imported_training_data(shape):
    images = _images(*shape)
    imported = fit_images(images, 64)
    for kind, arr in images.items():
        loaded = load_image(arr.astype(np.int64) if kind == "semseg" else arr, kind, 64)
        np.testing.assert_array_equal(np.asarray(loaded).astype(imported[kind].dtype), imported[kind], err_msg=kind)


def test_edges_keep_thin_lines_when_downscaled():
    e = _images(256, 256)["edges"]
    small = fit_image(e, "edges", 64)
    assert small.dtype == np.uint8 and set(np.unique(small)) <= {0, 1}
    assert small[:, 256 // 3 // 4].all() and small[32, :].all()  # both lines survive 4x downscaling
    assert small.mean() < 0.05  # and stay thin
