"""Bias-free linear layer with a faster fp32 CPU path.

PyTorch runs fp32 CPU matmuls through MKL, which on non-Intel CPUs (e.g. AMD EPYC) takes an AVX2
code path at well under half of the machine's AVX-512 peak. oneDNN dispatches on CPU features
instead, so for fp32 tensors on the CPU (autocast off) the forward pass and both backward matmuls
go through ``torch.ops.mkldnn._linear_pointwise`` (plain IEEE fp32 arithmetic, no reduced-precision
tricks). Everything else (CUDA, bf16 / autocast, builds without oneDNN) uses ``F.linear``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_FAST_CPU_FP32 = True  # switch off with set_fast_cpu_linear(False), e.g. to compare speeds
_MIN_MACS = 1 << 20  # smaller products stay on F.linear (oneDNN's per-call overhead dominates)


def set_fast_cpu_linear(enabled: bool) -> None:
    """Enable or disable the oneDNN fp32 CPU path of :class:`Linear` (on by default)."""
    global _FAST_CPU_FP32
    _FAST_CPU_FP32 = bool(enabled)


@functools.lru_cache(maxsize=1)
def onednn_linear_available() -> bool:
    """Whether this torch build has a working oneDNN fp32 linear (checked once on a tiny input)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        x, w = torch.randn(3, 5), torch.randn(4, 5)
        y = torch.ops.mkldnn._linear_pointwise(x, w.t().contiguous().t(), None, "none", [], "")
        return bool(torch.allclose(y, x @ w.t(), atol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _onednn_mm(a: Tensor, b_t: Tensor) -> Tensor:
    """``a @ b_t.T`` for 2-D fp32 CPU tensors via oneDNN; a (M, K), b_t (N, K) -> (M, N)."""
    return torch.ops.mkldnn._linear_pointwise(a, b_t, None, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """y = x @ W^T with forward and backward matmuls through oneDNN (fp32, CPU)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        x2d = x.reshape(-1, x.shape[-1])  # (M, in)
        return _onednn_mm(x2d, weight).reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        g2d = grad_out.reshape(-1, weight.shape[0])  # (M, out)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = _onednn_mm(g2d, weight.t()).reshape(x.shape)  # (M, out) @ (out, in)
        if ctx.needs_input_grad[1]:
            grad_w = _onednn_mm(g2d.t(), x.reshape(-1, x.shape[-1]).t())  # (out, M) @ (M, in)
        return grad_x, grad_w


def linear(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T`` (no bias); x (..., in), weight (out, in) -> (..., out)."""
    if (
        _FAST_CPU_FP32
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and x.numel() * weight.shape[0] >= _MIN_MACS
        and onednn_linear_available()
    ):
        return _OneDNNLinear.apply(x, weight)
    return F.linear(x, weight)


class Linear(nn.Linear):
    """``nn.Linear`` without bias that uses the fast fp32 CPU path of :func:`linear`.

    ``parts`` > 1 marks a fused projection (e.g. Q, K, V stacked on the output dimension); each
    part is initialised as its own matrix.
    """

    def __init__(self, in_features: int, out_features: int, parts: int = 1) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.parts = parts
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform init of each fused part."""
        for part in self.weight.data.chunk(getattr(self, "parts", 1), dim=0):
            nn.init.xavier_uniform_(part)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight)
