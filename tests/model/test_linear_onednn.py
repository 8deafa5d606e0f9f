"""The fp32 oneDNN linear path: forward and both gradients equal F.linear's."""

import pytest
import torch
import torch.nn.functional as F

from fourm.model import linear as linear_module
from fourm.model.linear import Linear, linear, onednn_linear_available, set_fast_cpu_linear

needs_onednn = pytest.mark.skipif(not onednn_linear_available(), reason="no oneDNN in this torch build")


@needs_onednn
@pytest.mark.parametrize("shape", [(7, 12), (2, 5, 12), (64, 12)])
def test_forward_and_backward_match_reference(shape, monkeypatch):
    monkeypatch.setattr(linear_module, "_MIN_MACS", 0)  # take the oneDNN path even at toy size
    x = torch.randn(*shape, dtype=torch.float64)
    w = torch.randn(9, 12, dtype=torch.float64)
    x32, w32 = x.float().requires_grad_(), w.float().requires_grad_()
    x64, w64 = x.clone().requires_grad_(), w.clone().requires_grad_()
    y32, y64 = linear(x32, w32), F.linear(x64, w64)
    g = torch.randn_like(y64)
    y32.backward(g.float())
    y64.backward(g)
    assert type(y32.grad_fn).__name__ == "_OneDNNLinearBackward"
    assert torch.allclose(y32.double(), y64, atol=1e-4)
    assert torch.allclose(x32.grad.double(), x64.grad, atol=1e-4)
    assert torch.allclose(w32.grad.double(), w64.grad, atol=1e-4)


@needs_onednn
def test_large_products_use_onednn_small_ones_f_linear():
    w = torch.randn(256, 128, requires_grad=True)
    big = linear(torch.randn(64, 128, requires_grad=True), w)
    small = linear(torch.randn(2, 128, requires_grad=True), w)
    assert type(big.grad_fn).__name__ == "_OneDNNLinearBackward"
    assert "OneDNN" not in type(small.grad_fn).__name__
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(torch.randn(64, 128), w).dtype == torch.bfloat16


def test_non_fp32_and_disabled_use_f_linear(monkeypatch):
    monkeypatch.setattr(linear_module, "_MIN_MACS", 0)
    w = torch.randn(4, 3)
    y = linear(torch.randn(2, 3, dtype=torch.float64, requires_grad=True), w.double())
    assert "OneDNN" not in type(y.grad_fn).__name__
    set_fast_cpu_linear(False)
    try:
        y = linear(torch.randn(2, 3, requires_grad=True), w)
        assert "OneDNN" not in type(y.grad_fn).__name__
    finally:
        set_fast_cpu_linear(True)


def test_fused_parts_are_initialised_separately():
    layer = Linear(64, 3 * 64, parts=3)
    bound = (6 / (64 + 64)) ** 0.5  # xavier bound of one (64, 64) part, not of (192, 64)
    assert layer.bias is None
    assert layer.weight.abs().max() <= bound
    assert layer.weight.abs().max() > 0.9 * bound
