"""Learning-rate schedule against the hand formula, and the weight-decay parameter groups."""

from __future__ import annotations

import math

import pytest
import torch

from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.training.config import OptimConfig
from fourm.training.optim import WarmupCosine, build_optimizer, lr_at, param_groups, split_decay


def test_lr_at_matches_hand_formula():
    lr, min_lr, warmup, total = 1e-3, 1e-5, 10, 110
    assert lr_at(0, lr, min_lr, warmup, total) == pytest.approx(1e-4)  # first warm-up step: lr / warmup
    assert lr_at(4, lr, min_lr, warmup, total) == pytest.approx(5e-4)
    assert lr_at(9, lr, min_lr, warmup, total) == pytest.approx(1e-3)  # warm-up ends at the peak
    assert lr_at(10, lr, min_lr, warmup, total) == pytest.approx(1e-3)  # cosine starts at the peak
    assert lr_at(60, lr, min_lr, warmup, total) == pytest.approx((lr + min_lr) / 2)  # half way down
    step = 85  # progress 0.75: min + (lr - min) * (1 + cos(0.75 pi)) / 2
    assert lr_at(step, lr, min_lr, warmup, total) == pytest.approx(
        min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(0.75 * math.pi))
    )
    assert lr_at(total, lr, min_lr, warmup, total) == pytest.approx(min_lr)  # cosine end
    assert lr_at(total + 50, lr, min_lr, warmup, total) == pytest.approx(min_lr)  # stays at the floor
    assert lr_at(0, lr, min_lr, 0, total) == pytest.approx(lr)  # no warm-up


def test_scheduler_drives_optimizer_and_restores_from_its_state():
    cfg = OptimConfig(lr=2e-3, min_lr=1e-4, warmup_steps=3)
    param = torch.nn.Parameter(torch.zeros(2, 2))
    opt = torch.optim.AdamW([param], lr=cfg.lr)
    sched = WarmupCosine(opt, cfg, total_steps=12)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, cfg.lr, cfg.min_lr, 3, 12) for s in range(12)])
    state = sched.state_dict()
    assert state == {"step": 12, "time_fraction": 0.0}
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched2 = WarmupCosine(opt2, cfg, total_steps=12)
    sched2.load_state_dict({"step": 5})
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(5, cfg.lr, cfg.min_lr, 3, 12))
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(6, cfg.lr, cfg.min_lr, 3, 12))


def _toy_model(**kw) -> FourM:
    mods = {"rgb": ModalityConfig("image", 16, 4), "caption": ModalityConfig("sequence", 12, 6)}
    return FourM(FourMConfig.preset("tiny", mods, dim=16, enc_depth=1, dec_depth=1, num_heads=2, **kw))


@pytest.mark.parametrize("qk_norm", [False, True])
def test_weight_decay_groups(qk_norm):
    model = _toy_model(qk_norm=qk_norm, norm="rmsnorm" if qk_norm else "layernorm")
    decay, no_decay = split_decay(model)
    names = dict(model.named_parameters())
    assert sorted(decay + no_decay) == sorted(names)  # every parameter exactly once
    assert not set(decay) & set(no_decay)
    for name in decay:  # only matrices of projections / heads decay
        assert names[name].ndim == 2 and not name.startswith("embeddings."), name
    assert "output_weight" in decay
    assert any(n.startswith("encoder.0.") and n.endswith("weight") for n in decay)  # attention/MLP matrices
    for emb in ("embeddings.enc_tokens", "embeddings.dec_tokens", "embeddings.enc_modality", "embeddings.mask_token"):
        assert emb in no_decay
    norms = [n for n in names if "norm" in n]
    assert norms and set(norms) <= set(no_decay)
    groups = param_groups(model, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert sum(len(g["params"]) for g in groups) == len(names)
    opt = build_optimizer(model, OptimConfig(weight_decay=0.1))
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 2


def test_weight_decay_only_shrinks_decayed_parameters():
    model = _toy_model()
    cfg = OptimConfig(lr=0.1, weight_decay=0.5, warmup_steps=0)
    opt = build_optimizer(model, cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradients: only decoupled weight decay moves weights
    opt.step()
    decay, no_decay = split_decay(model)
    params = dict(model.named_parameters())
    for n in decay:
        assert torch.allclose(params[n], before[n] * (1 - 0.1 * 0.5)), n
    for n in no_decay:
        assert torch.equal(params[n], before[n]), n
