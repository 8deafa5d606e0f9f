"""Fixed sin-cos position tables."""

import math

import pytest
import torch

from fourm.errors import FourmError
from fourm.model import FourMConfig
from fourm.model.pos_embed import sincos_1d, sincos_table_1d, sincos_table_2d


def test_2d_table_shape_range_and_origin():
    table = sincos_table_2d(4, 16)
    assert table.shape == (16, 16)
    assert table.abs().max() <= 1.0
    # position (0, 0): sin = 0, cos = 1 on both halves
    assert table[0].tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4


def test_2d_table_is_separable_row_then_column():
    g, d = 5, 16
    table = sincos_table_2d(g, d).view(g, g, d)
    row_1d, col_1d = sincos_table_1d(g, d // 2), sincos_table_1d(g, d // 2)
    for r in range(g):
        for c in range(g):
            assert torch.allclose(table[r, c, : d // 2], row_1d[r])
            assert torch.allclose(table[r, c, d // 2 :], col_1d[c])


def test_2d_rows_distinct_and_first_frequency_matches_formula():
    g, d = 6, 32
    table = sincos_table_2d(g, d)
    assert torch.cdist(table, table).add(torch.eye(g * g) * 10).min() > 1e-3  # all rows differ
    index = 2 * g + 3  # row 2, column 3
    assert math.isclose(table[index, 0].item(), math.sin(2.0), abs_tol=1e-6)
    assert math.isclose(table[index, d // 2].item(), math.sin(3.0), abs_tol=1e-6)


def test_2d_dot_product_depends_only_on_offset():
    g = 8
    table = sincos_table_2d(g, 32).view(g, g, 32)
    ref = table[0, 0] @ table[2, 3]
    for r, c in [(1, 1), (3, 2), (5, 4)]:
        assert torch.isclose(table[r, c] @ table[r + 2, c + 3], ref, atol=1e-5)
    assert table[0, 0] @ table[0, 0] > ref  # closest to itself


def test_1d_table():
    table = sincos_table_1d(10, 8)
    assert table.shape == (10, 8)
    assert torch.allclose(table[:, :4].pow(2) + table[:, 4:].pow(2), torch.ones(10, 4), atol=1e-6)
    assert torch.allclose(table[:, 0], torch.sin(torch.arange(10.0)))


def test_bad_dims():
    with pytest.raises(FourmError, match="divisible by 4"):
        sincos_table_2d(4, 18)
    with pytest.raises(FourmError, match="even dim"):
        sincos_table_1d(4, 7)


def test_sincos_2d_in_a_frame_places_a_finer_grid_over_the_same_image():
    """A 16 x 16 grid in an 8 x 8 frame: token (r, c) at ((r + 0.5) / 2 - 0.5, (c + 0.5) / 2 - 0.5);
    the frame of a grid's own size (or none) gives integer positions."""
    dim = 32
    assert torch.equal(sincos_table_2d(8, dim, 8), sincos_table_2d(8, dim))
    table = sincos_table_2d(16, dim, 8).view(16, 16, dim)
    coords = (torch.arange(16, dtype=torch.float64) + 0.5) / 2 - 0.5
    assert torch.allclose(table[:, 3, : dim // 2], sincos_1d(coords, dim // 2))
    assert torch.allclose(table[5, :, dim // 2 :], sincos_1d(coords, dim // 2))


@pytest.mark.parametrize("frame", [0, -8, True, 2.5])
def test_bad_image_frame_is_a_one_line_error(frame):
    with pytest.raises(FourmError, match="image_frame must be an integer >= 1"):
        FourMConfig(dim=32, enc_depth=1, dec_depth=1, num_heads=2, image_frame=frame).validate()
