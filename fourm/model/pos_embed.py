"""Fixed sin-cos position tables: 1D for sequences, 2D (row, column) for square image grids, N-D for
a modality's ``position_grid`` (e.g. video's (group, row, column))."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fourm.errors import FourmError


def sincos_1d(positions: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """Sin-cos features of (float) ``positions`` (N,) -> (N, dim): [sin(p w_k) | cos(p w_k)]."""
    if dim % 2:
        raise FourmError(f"sin-cos embedding needs an even dim, got {dim}")
    half = dim // 2
    omega = temperature ** (-torch.arange(half, dtype=torch.float64) / half)  # (half,)
    angles = positions.to(torch.float64)[:, None] * omega[None]  # (N, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_table_1d(length: int, dim: int) -> Tensor:
    """Table (length, dim) for positions 0..length-1."""
    return sincos_1d(torch.arange(length), dim)


def sincos_table_2d(grid_size: int, dim: int, frame: int | None = None) -> Tensor:
    """Table (grid_size**2, dim) for a row-major grid: first dim/2 features encode the row,
    the last dim/2 the column. ``frame``: place the grid in a frame of ``frame`` x ``frame`` cells over
    the same image (a token's centre at (i + 0.5) * frame / grid_size - 0.5), so image modalities on
    different grids share positions; None (or frame == grid_size): integer positions 0..grid_size-1."""
    if dim % 4:
        raise FourmError(f"2D sin-cos embedding needs dim divisible by 4, got {dim}")
    index = torch.arange(grid_size * grid_size)
    rows, cols = index // grid_size, index % grid_size
    if frame is not None and frame != grid_size:
        scale = frame / grid_size
        rows, cols = (rows.double() + 0.5) * scale - 0.5, (cols.double() + 0.5) * scale - 0.5
    return torch.cat([sincos_1d(rows, dim // 2), sincos_1d(cols, dim // 2)], dim=1)


def sincos_table_nd(grid: tuple[int, ...], dim: int) -> Tensor:
    """Table (prod(grid), dim) for a row-major grid of ``len(grid)`` axes (the last varies fastest).

    Axis k gets features [k * c, (k + 1) * c), the 1D sin-cos of its coordinate, with c = dim // len(grid)
    rounded down to even; the last dim - len(grid) * c features are zero. For 2 axes and dim % 4 == 0
    this is :func:`sincos_table_2d` of a (rows, columns) grid exactly; for 1 axis and an even dim,
    :func:`sincos_table_1d`."""
    grid = tuple(grid)
    if not grid or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in grid):
        raise FourmError(f"position grid must be a non-empty list of integers >= 1, got {list(grid)}")
    chunk = dim // len(grid) // 2 * 2  # per-axis features (even)
    if chunk == 0:
        raise FourmError(f"{len(grid)}-axis sin-cos embedding needs dim >= {2 * len(grid)}, got {dim}")
    index = torch.arange(math.prod(grid))
    coords = []  # (N,) per axis, last axis first
    for size in reversed(grid):
        coords.append(index % size)
        index = index // size
    parts = [sincos_1d(c, chunk) for c in reversed(coords)]
    rest = dim - chunk * len(grid)
    if rest:
        parts.append(torch.zeros(parts[0].shape[0], rest))
    return torch.cat(parts, dim=1)  # (prod(grid), dim)
