"""Raw-sample records survive a trip through a datasets.Dataset."""

import datasets
import numpy as np
import pytest

from fourm.core.schema import check_image, features, from_record, to_record
from fourm.errors import FourmError


def _sample(size=8):
    rng = np.random.default_rng(0)
    return {
        "id": "s0",
        "rgb": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "depth": rng.random((size, size), dtype=np.float32),
        "semseg": rng.integers(0, 5, (size, size), dtype=np.uint8),
        "normals": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "edges": rng.integers(0, 2, (size, size), dtype=np.uint8),
        "caption": "a red circle",
        "bboxes": [{"label": "circle", "box": [0.25, 0.5, 0.75, 1.0]}],
        "metadata": {"object_count": 1, "brightness": 0.5},
        "color_palette": [[255, 0, 0], [10, 20, 30]],
    }


@pytest.mark.parametrize("fmt", [None, "numpy"])
def test_record_round_trip(fmt):
    s = _sample()
    ds = datasets.Dataset.from_list([to_record(s)], features=features(8))
    back = from_record((ds.with_format(fmt) if fmt else ds)[0])
    for k in ("rgb", "semseg", "normals", "edges"):
        np.testing.assert_array_equal(back[k], s[k])
    np.testing.assert_allclose(back["depth"], s["depth"], atol=1e-3)  # stored as float16
    assert back["depth"].dtype == np.float32
    assert back["caption"] == s["caption"] and isinstance(back["id"], str)
    assert back["bboxes"] == s["bboxes"] and back["metadata"] == s["metadata"]
    assert back["color_palette"] == s["color_palette"]


def test_check_image_errors():
    check_image("rgb", np.zeros((8, 8, 3)), size=8)
    with pytest.raises(FourmError, match="wrong image size 4x8"):
        check_image("rgb", np.zeros((8, 4, 3)), size=8)
    with pytest.raises(FourmError, match=r"shape \(H, W\)"):
        check_image("depth", np.zeros((8, 8, 3)))
    with pytest.raises(FourmError, match="not an image modality"):
        check_image("caption", np.zeros((8, 8)))
    with pytest.raises(FourmError, match="unknown raw-sample key"):
        features(8, keys=("bogus",))
