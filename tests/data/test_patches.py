"""Pixel patches: patchify/unpatchify, 8-bit levels, and the rules of a patch modality's spec."""

from pathlib import Path

import numpy as np
import pytest

from fourm.core.patches import LEVELS, patchify, to_levels, unpatchify
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, ModalitySpec

EXTRA = Path(__file__).resolve().parents[2] / "configs" / "modalities" / "extra"
PIXELS = {
    "name": "pix", "kind": "image", "vocab_size": 256, "num_tokens": 16, "patch_size": 4, "channels": 3,
    "image_size": 16, "input": True, "target": False,
}  # fmt: skip


@pytest.mark.parametrize("shape", [(16, 16, 3), (16, 16)])
def test_patchify_round_trip_and_layout(shape):
    image = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    channels = shape[2] if len(shape) == 3 else 1
    patches = patchify(image, 4)
    assert patches.shape == (16, 4 * 4 * channels) and patches.dtype == np.uint8
    back = unpatchify(patches, 4, channels)
    assert np.array_equal(back, image.reshape(16, 16, channels))
    grid = image.reshape(16, 16, channels)
    for k in range(16):
        y, x = divmod(k, 4)  # row-major over the 4 x 4 grid
        block = grid[4 * y : 4 * y + 4, 4 * x : 4 * x + 4]  # (y, x, c) order inside the patch
        assert np.array_equal(patches[k], block.reshape(-1))


def test_to_levels():
    depth = np.array([[0.0, 0.5], [1.0, 2.0]], dtype=np.float32)
    assert to_levels(depth, (0.0, 1.0)).tolist() == [[0, 128], [255, 255]]  # clipped above the range
    assert to_levels(np.array([-1.0, 0.0, 1.0]), (-1.0, 1.0)).tolist() == [0, 128, 255]
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert to_levels(rgb) is rgb and to_levels(rgb, (0, 255)).dtype == np.uint8


def test_patchify_errors():
    with pytest.raises(FourmError, match="square image"):
        patchify(np.zeros((16, 8, 3)), 4)
    with pytest.raises(FourmError, match="side divides by 6"):
        patchify(np.zeros((16, 16, 3)), 6)
    with pytest.raises(FourmError, match="expects an image"):
        patchify(np.zeros(16), 4)
    with pytest.raises(FourmError, match="unpatchify expects"):
        unpatchify(np.zeros((15, 48)), 4, 3)  # not a square number of patches
    with pytest.raises(FourmError, match="unpatchify expects"):
        unpatchify(np.zeros((16, 47)), 4, 3)


def test_patch_spec_and_shipped_yaml():
    spec = ModalitySpec.from_dict(PIXELS)
    assert spec.patch_dim == 48 and spec.length == 16 and spec.grid_size == 4
    assert ModalitySpec.from_dict({**PIXELS, "patch_size": None, "tokenizer": "t", "target": True}).patch_dim is None
    reg = ModalityRegistry.from_files([EXTRA / "rgb_pixels.yaml"])
    pix = reg["rgb_pixels"]
    assert pix.patch_dim == 192 and pix.data_key == "rgb" and pix.tokenizer is None
    assert (pix.kind, pix.vocab_size, pix.num_tokens, pix.patch_size, pix.image_size) == ("image", LEVELS, 64, 8, 64)
    assert pix.input and not pix.target and pix.value_range == (0.0, 255.0)


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"kind": "vector"}, r"field 'patch_size' needs kind 'image', got 'vector'"),
        ({"target": True}, r"field 'target' must be false for a patch modality"),
        ({"input": False, "target": True}, r"field 'target' must be false"),
        ({"input": False}, r"fields 'input' and 'target' are both false"),
        ({"tokenizer": "tokenizers/rgb"}, r"field 'tokenizer' must be unset for a patch modality"),
        ({"channels": None}, r"field 'channels' is required for a patch modality"),
        ({"image_size": None}, r"field 'image_size' is required for a patch modality"),
        ({"image_size": 18}, r"field 'image_size' \(18\) must be a multiple of patch_size 4"),
        ({"num_tokens": 64}, r"field 'num_tokens' must be \(image_size / patch_size\) \*\* 2 = 16, got 64"),
        ({"vocab_size": 1024}, r"field 'vocab_size' must be 256 for a patch modality"),
        ({"patch_size": 0}, r"field 'patch_size' must be > 0, got 0"),
    ],
)
def test_patch_spec_rules_name_the_field(change, pattern):
    with pytest.raises(FourmError, match=r"^modality 'pix': " + pattern) as e:
        ModalitySpec.from_dict({**PIXELS, **change})
    assert "\n" not in str(e.value)


def test_from_levels_inverts_to_levels():
    from fourm.core.patches import from_levels, to_levels

    depth = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    back = from_levels(to_levels(depth, (0.0, 1.0)), (0.0, 1.0))
    assert back.dtype == np.float32 and np.abs(back - depth).max() <= 0.5 / 255 + 1e-6
    rgb = np.arange(192, dtype=np.uint8).reshape(8, 8, 3)
    out = from_levels(to_levels(rgb))
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)
