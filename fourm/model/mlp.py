"""SwiGLU feed-forward block without biases: w_out(silu(x W_gate) * (x W_up))."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from fourm.model.linear import Linear


class SwiGLU(nn.Module):
    """Gated MLP; gate and up projections are fused into one (2*hidden, dim) matmul."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.gate_up = Linear(dim, 2 * hidden, parts=2)
        self.down = Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (..., hidden) each
        return self.down(self.dropout(F.silu(gate) * up))
