"""The one table of image kinds (fourm.core.image_kinds) and the one box check (fourm.core.boxes):
numerics against simple references, and the same results through generation's and import's paths."""

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fourm.codecs.values import load_image
from fourm.core.boxes import check_boxes
from fourm.core.image_kinds import EDGE_COVERAGE, IMAGE_KINDS, center_square, image_kind, resize_crop
from fourm.core.schema import IMAGE_LAYOUT
from fourm.data.user.geometry import fit_image, fit_images
from fourm.data.user.readers import check_bboxes, read_depth, read_edges, read_normals, read_rgb, read_semseg
from fourm.data.user.report import SkipSample
from fourm.errors import FourmError
from fourm.generation.export import picture

ROOT = Path(__file__).resolve().parents[2]


def test_table_matches_the_schema_layout():
    assert list(IMAGE_KINDS) == list(IMAGE_LAYOUT)
    for name, spec in IMAGE_KINDS.items():
        ch, dtype, _ = IMAGE_LAYOUT[name]
        assert spec.name == name and spec.channels == (ch or 1) and spec.dtype == dtype
        assert spec.ndim == (3 if ch else 2)
    assert IMAGE_KINDS["semseg"].labels and IMAGE_KINDS["semseg"].resample == Image.Resampling.NEAREST
    assert IMAGE_KINDS["edges"].binary and IMAGE_KINDS["edges"].threshold == EDGE_COVERAGE
    assert IMAGE_KINDS["depth"].continuous and IMAGE_KINDS["depth"].value_range == (0.0, 1.0)


def test_unknown_kind_is_one_line_naming_the_known_ones():
    with pytest.raises(FourmError) as e:
        image_kind("heat")
    msg = str(e.value)
    assert "\n" not in msg and "'heat'" in msg and all(k in msg for k in IMAGE_KINDS)
    with pytest.raises(FourmError, match="'heat' is not an image kind"):
        load_image(np.zeros((4, 4)), "heat", 4)
    with pytest.raises(FourmError, match="'heat' is not an image kind"):
        fit_image(np.zeros((4, 4), np.uint8), "heat", 4)
    assert "heat" not in IMAGE_KINDS and IMAGE_KINDS.get("heat") is None  # membership does not raise


def test_core_imports_nothing_of_fourm_but_core_and_errors():
    for path in (ROOT / "fourm" / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            for n in names:
                if n.split(".")[0] == "fourm":
                    assert n.startswith("fourm.core") or n == "fourm.errors", (path.name, n)


def _checker(n: int = 64, cell: int = 8) -> np.ndarray:
    y, x = np.mgrid[:n, :n]
    return (((y // cell) + (x // cell)) % 2).astype(np.uint8)


@pytest.mark.parametrize("size", [20, 37, 64, 100])
def test_semseg_resize_keeps_only_existing_class_ids(size):
    classes = (_checker(90) * 7 + np.arange(90)[None, :] // 30 * 3).astype(np.uint8)  # ids {0,3,6,7,10,13}
    out = fit_image(classes[:, :77], "semseg", size)
    assert out.dtype == np.uint8 and out.shape == (size, size)
    assert set(np.unique(out)) <= set(np.unique(classes))


def test_semseg_class_id_above_255_is_refused():
    with pytest.raises(FourmError, match="class id 300 out of range"):
        load_image(np.full((4, 4), 300), "semseg", 2)


@pytest.mark.parametrize("kind, shape", [("rgb", (8, 8, 3)), ("semseg", (8, 8)), ("edges", (8, 8))])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_pixels_are_refused_except_in_depth(kind, shape, bad):
    """A float image with NaN used to become black (rgb) or no edge silently; depth reads NaN as farthest."""
    arr = np.full(shape, 0.5, np.float32) if kind == "rgb" else np.ones(shape, np.float32)
    arr[2, 3] = bad
    with pytest.raises(FourmError, match=f"{kind}: the image holds NaN or infinite values"):
        load_image(arr, kind, 8)
    depth = np.full((8, 8), 0.25, np.float32)
    depth[2, 3] = bad
    out = load_image(depth, "depth", 8)
    assert out[2, 3] == 1.0 and out[0, 0] == pytest.approx(0.25)


def test_depth_range_is_kept():
    rng = np.random.default_rng(0)
    depth = rng.random((50, 70)).astype(np.float32)
    depth[0, 0], depth[-1, -1] = 0.0, 1.0
    for size in (16, 50, 90):  # down, same side, up (bilinear may overshoot: clipped)
        out = fit_image(depth, "depth", size)
        assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    flat = np.full((30, 40), 0.25, np.float32)
    np.testing.assert_allclose(fit_image(flat, "depth", 17), 0.25, atol=1e-6)


@pytest.mark.parametrize("size", [16, 33, 64, 128])
def test_edges_stay_binary(size):
    edges = _checker(64, 1)  # a one-pixel checkerboard
    out = fit_image(edges, "edges", size)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
    if size < 64 and 64 % size == 0:  # whole cells: each is half edge
        assert out.all()


def test_edges_follow_the_coverage_reference():
    e = np.zeros((8, 8), np.uint8)
    e[0, :] = 1  # top row: 1/4 of each 2x2 cell's area in the top output row
    e[4, :2] = 1  # a short piece: 1/4 of one cell too
    e[6, 6] = 1  # one pixel: 1/4 of its cell
    out = fit_image(e, "edges", 4)
    reference = np.zeros((4, 4), np.uint8)
    reference[0, :] = 1
    reference[2, 0] = 1
    reference[3, 3] = 1  # 1/4 == EDGE_COVERAGE: kept
    np.testing.assert_array_equal(out, reference)


def test_rgb_resize_matches_pil_reference():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    # the centred 40 x 40 square, resized in one step (the filter may read pixels just outside it)
    ref = np.asarray(Image.fromarray(rgb).resize((20, 20), Image.Resampling.BICUBIC, box=(10, 0, 50, 40)))
    np.testing.assert_array_equal(fit_image(rgb, "rgb", 20), ref)
    assert center_square(60, 40) == (10.0, 0.0, 50.0, 40.0)
    np.testing.assert_array_equal(resize_crop(rgb, 20, Image.Resampling.BICUBIC), ref)


def _inputs(h: int, w: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    edges = np.zeros((h, w), np.uint8)
    edges[:, w // 3] = 1
    return {
        "rgb": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "normals": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "depth": rng.random((h, w), dtype=np.float32),
        "semseg": rng.integers(0, 9, (h, w)).astype(np.uint8),
        "edges": edges,
    }


@pytest.mark.parametrize("shape", [(45, 70), (70, 45), (32, 32)])
def test_generation_and_import_give_identical_arrays_for_arrays(shape):
    images = _inputs(*shape)
    imported = fit_images(images, 32)
    for kind, arr in images.items():
        loaded = load_image(arr, kind, 32)
        assert loaded.dtype == imported[kind].dtype, kind
        np.testing.assert_array_equal(loaded, imported[kind], err_msg=kind)


def test_generation_and_import_give_identical_arrays_for_files(tmp_path):
    """The same image file read by import's readers + fit_images and by generation's load_image."""
    images = _inputs(45, 70)
    images["edges"] = images["edges"] * 255  # an edge picture (0 / 255), as fourm-generate writes it
    files = {}
    for kind, arr in images.items():
        files[kind] = tmp_path / f"{kind}.png"
        pixels = np.rint(arr * 65535).astype(np.uint16) if kind == "depth" else arr
        Image.fromarray(pixels).save(files[kind])
    readers = {
        "rgb": read_rgb,
        "normals": read_normals,
        "depth": read_depth,
        "semseg": read_semseg,
        "edges": read_edges,
    }
    imported = fit_images({k: readers[k](p) for k, p in files.items()}, 32)
    for kind, path in files.items():
        np.testing.assert_array_equal(load_image(path, kind, 32), imported[kind], err_msg=kind)


def test_edge_pictures_of_zeros_and_ones_read_the_same_on_both_paths(tmp_path):
    e = np.zeros((16, 16), np.uint8)
    e[4, :] = 1  # a {0, 1} PNG: nonzero = edge on both paths (generation used to need > 127)
    Image.fromarray(e).save(tmp_path / "e.png")
    np.testing.assert_array_equal(read_edges(tmp_path / "e.png"), e)
    np.testing.assert_array_equal(load_image(tmp_path / "e.png", "edges", 16), e)


def test_pictures_read_back_through_the_table(tmp_path):
    images = _inputs(24, 24)
    for kind in ("depth", "semseg", "edges"):
        pic = picture(kind, images[kind])
        Image.fromarray(pic).save(tmp_path / f"{kind}.png")
        back = load_image(tmp_path / f"{kind}.png", kind, 24)
        if kind == "depth":
            assert np.abs(back - images[kind]).max() <= 1 / 255 + 1e-6
        else:
            np.testing.assert_array_equal(back, images[kind], err_msg=kind)
    assert picture("edges", images["edges"]).ndim == 2 and picture("rgb", images["rgb"]).shape == (24, 24, 3)


BAD_BOXES = [
    ([{"label": "a", "box": [0, 0, "x", 1]}], "box 0 has non-numeric or non-finite coordinates"),
    ([{"label": "a", "box": [0, 0, float("nan"), 1]}], "box 0 has non-numeric or non-finite coordinates"),
    ([{"label": "a", "box": [0, 0, 1]}], "box 0 must be {'label': str, 'box': [x0, y0, x1, y1]}"),
    ([{"label": "a", "box": [0, 0, 1, 1]}, {"box": [0, 0, 1, 1]}], "box 1 must be"),
    ([{"label": 3, "box": [0, 0, 1, 1]}], "box 0 must be"),
    (["a 0 0 1 1"], "box 0 must be"),
]


@pytest.mark.parametrize("boxes,message", BAD_BOXES)
def test_import_and_box_maps_reject_the_same_bad_boxes_alike(boxes, message):
    with pytest.raises(FourmError, match=message.replace("[", r"\[").replace("{", r"\{")):
        check_boxes(boxes, normalised=False)
    with pytest.raises(SkipSample) as e:
        check_bboxes(boxes, "sample.json")
    assert message in str(e.value)
    from fourm.codecs import BoxMapCodec

    codec = BoxMapCodec.__new__(BoxMapCodec)
    codec.name = "box_map"
    with pytest.raises(FourmError) as e2:
        codec.normalize(boxes)
    assert str(e2.value).startswith("'box_map': ") and message in str(e2.value)


def test_only_import_insists_on_normalised_ordered_boxes():
    outside = [{"label": "a", "box": [-0.5, 0.0, 1.5, 1.0]}]
    inverted = [{"label": "a", "box": [0.6, 0.0, 0.4, 1.0]}]
    with pytest.raises(FourmError, match=r"box 0 \[-0.5, 0.0, 1.5, 1.0\] is not normalised"):
        check_boxes(outside)
    with pytest.raises(FourmError, match="x1 < x0"):
        check_boxes(inverted)
    assert check_boxes(outside, normalised=False) == [{"label": "a", "box": [-0.5, 0.0, 1.5, 1.0]}]
    assert check_boxes({"bboxes": [{"label": "b", "box": [0, 0, 1, 1 + 1e-9]}]}) == [
        {"label": "b", "box": [0.0, 0.0, 1.0, 1.0]}
    ]
    with pytest.raises(FourmError, match="bboxes must be a list, got str"):
        check_boxes("x")
