"""Attention layer against a naive softmax(QK^T / sqrt(d)) V, masks, QK-norm and KV caching."""

import pytest
import torch
import torch.nn.functional as F

from fourm.model.attention import Attention, attend, set_cpu_attention


def naive_attention(q, k, v, mask=None):
    scores = torch.einsum("bhid,bhjd->bhij", q.double(), k.double()) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.einsum("bhij,bhjd->bhid", scores.softmax(-1), v.double()).float()


def split_heads(x, h):  # (B, N, D) -> (B, H, N, hd)
    b, n, d = x.shape
    return x.view(b, n, h, d // h).transpose(1, 2)


@pytest.fixture(params=["explicit", "sdpa"])
def backend(request):
    set_cpu_attention(request.param)
    yield request.param
    set_cpu_attention("explicit")


def test_attend_matches_naive(backend):
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    mask = torch.rand(2, 1, 5, 7) > 0.4
    mask[..., 0] = True
    assert torch.allclose(attend(q, k, v, mask), naive_attention(q, k, v, mask), atol=1e-5)
    assert torch.allclose(attend(q, k, v), naive_attention(q, k, v), atol=1e-5)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_self_attention_matches_naive(backend, qk_norm):
    attn = Attention(16, 4, qk_norm=qk_norm, norm="rmsnorm")
    x = torch.randn(2, 6, 16)
    mask = torch.rand(2, 1, 6, 6) > 0.5
    mask |= torch.eye(6, dtype=torch.bool)
    q, k, v = (split_heads(t, 4) for t in (x @ attn.qkv.weight.t()).chunk(3, dim=-1))
    if qk_norm:  # per-head RMS norm with unit scale at init
        q, k = F.rms_norm(q, (4,), eps=1e-6), F.rms_norm(k, (4,), eps=1e-6)
    want = naive_attention(q, k, v, mask).transpose(1, 2).reshape(2, 6, 16) @ attn.proj.weight.t()
    assert torch.allclose(attn(x, attn_mask=mask), want, atol=1e-5)


def test_cross_attention_matches_naive(backend):
    attn = Attention(16, 2, cross=True)
    x, ctx = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    mask = torch.tensor([True, True, False, True, False])[None, None, None].expand(2, 1, 1, 5)
    q = split_heads(x @ attn.q.weight.t(), 2)
    k, v = (split_heads(t, 2) for t in (ctx @ attn.kv.weight.t()).chunk(2, dim=-1))
    want = naive_attention(q, k, v, mask).transpose(1, 2).reshape(2, 3, 16) @ attn.proj.weight.t()
    assert torch.allclose(attn(x, context=ctx, attn_mask=mask), want, atol=1e-5)
    # keys outside the mask do not matter
    ctx2 = ctx.clone()
    ctx2[:, 2] += 10.0
    assert torch.allclose(attn(x, context=ctx2, attn_mask=mask), want, atol=1e-5)


def test_self_attention_kv_cache_equals_full_causal():
    attn = Attention(16, 4)
    x = torch.randn(1, 5, 16)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    full = attn(x, attn_mask=causal)
    out, kv = attn(x[:, :3], attn_mask=causal[:3, :3], use_cache=True)
    step, kv = attn(x[:, 3:4], attn_mask=causal[3:4, :4], past_kv=kv, use_cache=True)
    last = attn(x[:, 4:5], attn_mask=causal[4:5, :5], past_kv=kv)
    assert kv[0].shape == (1, 4, 4, 4)
    assert torch.allclose(torch.cat([out, step, last], dim=1), full, atol=1e-5)


def test_cross_attention_precomputed_kv():
    attn = Attention(16, 4, cross=True)
    x, ctx = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    assert torch.allclose(attn(x, past_kv=attn.project_kv(ctx)), attn(x, context=ctx), atol=1e-6)


def test_explicit_and_sdpa_gradients_agree():
    q, k, v = (torch.randn(2, 3, 6, 8, requires_grad=True) for _ in range(3))
    mask = torch.rand(2, 1, 6, 6) > 0.5
    mask |= torch.eye(6, dtype=torch.bool)
    grads = []
    for kind in ("explicit", "sdpa"):
        set_cpu_attention(kind)
        out = attend(q, k, v, mask)
        grads.append(torch.autograd.grad((out * torch.arange(8.0)).sum(), (q, k, v)))
    set_cpu_attention("explicit")
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-5)
