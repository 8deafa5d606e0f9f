"""Fixed sin-cos position tables: 1D for sequences, 2D (row, column) for square image grids."""

from __future__ import annotations

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


def sincos_table_2d(grid_size: int, dim: int) -> Tensor:
    """Table (grid_size**2, dim) for a row-major grid: first dim/2 features encode the row,
    the last dim/2 the column."""
    if dim % 4:
        raise FourmError(f"2D sin-cos embedding needs dim divisible by 4, got {dim}")
    index = torch.arange(grid_size * grid_size)
    rows, cols = index // grid_size, index % grid_size
    return torch.cat([sincos_1d(rows, dim // 2), sincos_1d(cols, dim // 2)], dim=1)
