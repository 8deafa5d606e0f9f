"""Sample-grid picture and colour maps."""

import numpy as np
import pytest
from PIL import Image

from fourm.data.visualize import (
    HEADER_HEIGHT,
    PAD,
    TEXT_WIDTH,
    colorize_depth,
    colorize_semseg,
    depth_colormap,
    draw_boxes,
    sample_grid,
    save_sample_grid,
)
from fourm.errors import FourmError


def _sample(i, size=16):
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[:] = (0, 0, 120)
    rgb[4:12, 4:12] = (250, 250, 250)
    yy, xx = np.mgrid[:size, :size]
    return {
        "id": f"s{i}",
        "rgb": rgb,
        "depth": (xx / (size - 1)).astype(np.float32),
        "semseg": (xx // 4).astype(np.uint8),
        "normals": np.full((size, size, 3), (128, 128, 255), np.uint8),
        "edges": (xx == 8).astype(np.uint8),
        "caption": f"sample number {i} with a white square",
        "bboxes": [{"label": "square", "box": [0.25, 0.25, 0.75, 0.75]}],
        "metadata": {"brightness": 0.3, "objects": 1},
        "color_palette": [[0, 0, 120], [250, 250, 250]],
    }


def test_grid_png_size_and_layout(tmp_path):
    samples = [_sample(i) for i in range(3)]
    path = save_sample_grid(samples, tmp_path / "out" / "grid.png", scale=2)
    img = np.asarray(Image.open(path))
    cell = 16 * 2
    # columns: rgb(+boxes), depth, semseg, normals, edges, caption (text), metadata (text), palette
    widths = [cell] * 5 + [TEXT_WIDTH * cell] * 2 + [cell]
    assert img.shape == (HEADER_HEIGHT + PAD + 3 * (cell + PAD), PAD + sum(w + PAD for w in widths), 3)
    assert not list((tmp_path / "out").glob("*.tmp"))  # written atomically, nothing left over
    top = HEADER_HEIGHT + PAD
    x_edges = PAD + 4 * (cell + PAD)
    # edges column: white on black, the line at x = 8 upscaled to columns 16..17
    edges_cell = img[top : top + cell, x_edges : x_edges + cell]
    assert (edges_cell[:, 16:18] == 255).all() and (edges_cell[:, :16] == 0).all()
    # normals shown as their colour, up-scaled without blending
    x_normals = PAD + 3 * (cell + PAD)
    assert (img[top : top + cell, x_normals : x_normals + cell] == (128, 128, 255)).all()
    # rgb: the box outline is drawn in a colour that is not in the image
    rgb_cell = img[top : top + cell, PAD : PAD + cell].reshape(-1, 3)
    assert len({tuple(c) for c in rgb_cell}) > 2
    # palette swatches: left half first colour, right half second
    x_pal = PAD + sum(w + PAD for w in widths[:-1])
    assert (img[top + 5, x_pal + 2] == (0, 0, 120)).all() and (img[top + 5, x_pal + cell - 3] == (250, 250, 250)).all()
    # header row has text (non-background pixels) above every column
    assert (img[:HEADER_HEIGHT, PAD : PAD + cell] != img[0, 0]).any()


def test_grid_selected_modalities_and_errors():
    samples = [_sample(0), {k: v for k, v in _sample(1).items() if k != "depth"}]
    grid = sample_grid(samples, modalities=["depth", "caption"], scale=1)
    assert grid.shape == (HEADER_HEIGHT + PAD + 2 * (16 + PAD), PAD + (16 + PAD) + (2 * 16 + PAD), 3)
    with pytest.raises(FourmError, match="modality 'flow' is in none of the samples"):
        sample_grid(samples, modalities=["flow"])
    with pytest.raises(FourmError, match="at least one sample"):
        sample_grid([])


def test_semseg_colours_distinct_per_class():
    classes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    colours = colorize_semseg(classes).reshape(-1, 3)
    assert len({tuple(c) for c in colours}) == 256
    assert tuple(colours[0]) == (0, 0, 0)  # background black
    # same class -> same colour everywhere
    img = colorize_semseg(np.array([[3, 3], [5, 3]], np.uint8))
    assert (img[0, 0] == img[0, 1]).all() and (img[0, 0] == img[1, 1]).all() and (img[0, 0] != img[1, 0]).any()


def test_depth_colormap_is_monotone_in_lightness():
    lut = depth_colormap().astype(float)
    lightness = lut @ [0.299, 0.587, 0.114]
    assert (np.diff(lightness) > 0).all()
    d = np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)
    rgb = colorize_depth(d)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == lut[255]).all() and (rgb[0, 2] == lut[0]).all()  # near bright, far dark
    assert (rgb[0, 3] == rgb[0, 2]).all()  # NaN treated as far
    assert (colorize_depth(d, near_bright=False)[0, 0] == lut[0]).all()


def test_draw_boxes_outline():
    rgb = np.zeros((20, 20, 3), np.uint8)
    out = draw_boxes(rgb, [{"label": "a", "box": [0.25, 0.25, 0.75, 0.75]}])
    assert rgb.sum() == 0  # input untouched
    drawn = out.any(-1)
    assert drawn[5, 5:15].all() and drawn[14, 5:15].all() and drawn[5:15, 5].all() and drawn[5:15, 14].all()
    assert not drawn[6:14, 6:14].any() and not drawn[:5].any() and not drawn[15:].any()


def test_cli_show(tmp_path, capsys):
    raw = pytest.importorskip("fourm.data.raw_dataset")
    from fourm.cli.data_user import register

    samples = [_sample(i) for i in range(5)]
    keys = ("id", "rgb", "depth", "semseg", "caption")
    raw.write_raw_dataset(tmp_path / "ds", {"train": samples[:3], "val": samples[3:]}, 16, keys)
    parser = __import__("argparse").ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["show", "--data", str(tmp_path / "ds"), "--num", "8", "--out", str(tmp_path / "g.png"),
                              "--scale", "3"])  # fmt: skip
    assert args.func(args) == 0
    img = Image.open(tmp_path / "g.png")
    cell = 16 * 3
    assert img.size == (PAD + 3 * (cell + PAD) + TEXT_WIDTH * cell + PAD, HEADER_HEIGHT + PAD + 2 * (cell + PAD))
    assert "2 samples" in capsys.readouterr().out
    args = parser.parse_args(["show", "--data", str(tmp_path / "ds"), "--split", "test"])
    with pytest.raises(FourmError, match=r"split 'test' not in .* \(splits: train, val\)"):
        args.func(args)


def test_draw_boxes_label_tags_read_and_stay_inside():
    """A label sits on a filled tag of its box's colour, in black or white by contrast, inside the
    picture even for a box at the right edge; small pictures get no labels."""
    from fourm.data.visualize import label_color

    rgb = np.full((128, 128, 3), 200, np.uint8)
    box = {"label": "large blue square", "box": [0.8, 0.5, 1.0, 0.9]}  # at the right edge, room above
    out = draw_boxes(rgb, [box])
    color = np.array(label_color(box["label"]))
    tag = (out == color).all(-1)
    ys, xs = np.nonzero(tag[: int(0.5 * 128)])  # the tag lies above the box
    assert len(xs) > 100 and xs.max() <= 127 and xs.min() < int(0.8 * 128)  # shifted left to fit
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    text = (0, 0, 0) if luma > 140 else (255, 255, 255)
    region = out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(int)
    nearer_text = np.abs(region - text).sum(-1) < np.abs(region - color).sum(-1)
    assert nearer_text.sum() > 20  # the (antialiased) text, in the contrasting colour, on the tag
    top = draw_boxes(rgb, [{"label": "a", "box": [0.1, 0.0, 0.5, 0.5]}])  # no room above: inside the box
    assert ((top == np.array(label_color("a"))).all(-1)[1:10, 14:40]).sum() > 20
    small = draw_boxes(np.full((32, 32, 3), 200, np.uint8), [box])
    assert (small == color).all(-1).sum() < 40  # the outline only


def test_draw_boxes_label_tags_do_not_cover_each_other():
    from PIL import Image, ImageDraw

    from fourm.data.visualize import _font, label_color

    rgb = np.full((128, 128, 3), 200, np.uint8)
    boxes = [{"label": "small red circle", "box": [0.3, 0.4, 0.45, 0.55]},
             {"label": "large blue square", "box": [0.4, 0.4, 0.7, 0.7]}]  # fmt: skip
    out = draw_boxes(rgb, boxes)
    measure = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    for b in boxes:  # each tag's padding row shows whole: a run of its colour as wide as its text
        tag = (out == np.array(label_color(b["label"]))).all(-1)
        left, _, right, _ = measure.textbbox((0, 0), b["label"], font=_font())
        runs = [np.diff(np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))) for row in tag]
        assert max(r[::2].max(initial=0) for r in runs) >= right - left, b["label"]
