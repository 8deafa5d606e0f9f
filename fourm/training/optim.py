"""AdamW with weight-decay groups, and the warm-up + cosine learning-rate schedule.

Weight decay applies to the matrices of linear layers (attention, MLP, untied output heads) and
not to norms, biases and embeddings (token / modality tables, the mask token). The schedule is a
pure function of the step: linear warm-up from ``lr / warmup_steps`` to ``lr`` over
``warmup_steps`` steps, then half a cosine down to ``min_lr`` at ``total_steps``. Under a wall-time
cap the cosine follows ``max(step progress, time_fraction)`` (``time_fraction``: elapsed / cap).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from fourm.errors import FourmError
from fourm.model.embeddings import PackedEmbeddings
from fourm.model.norm import LayerNorm, RMSNorm
from fourm.training.config import OptimConfig

NO_DECAY_MODULES: tuple[type, ...] = (nn.Embedding, nn.LayerNorm, nn.GroupNorm)


def _is_no_decay_module(module: nn.Module) -> bool:
    return isinstance(module, (*NO_DECAY_MODULES, PackedEmbeddings, LayerNorm, RMSNorm))


def split_decay(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the trainable parameters with and without weight decay."""
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            full = f"{module_name}.{name}" if module_name else name
            if param.ndim < 2 or name.endswith("bias") or _is_no_decay_module(module):
                no_decay.append(full)
            else:
                decay.append(full)
    return decay, no_decay


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW parameter groups: ``weight_decay`` on matrices, 0 on norms/biases/embeddings."""
    params = dict(model.named_parameters())
    decay, no_decay = split_decay(model)
    groups = [
        {"params": [params[n] for n in decay], "weight_decay": weight_decay},
        {"params": [params[n] for n in no_decay], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig, fused: bool = False) -> torch.optim.AdamW:
    """Torch AdamW over :func:`param_groups` (``fused`` uses the single-kernel implementation)."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused or None
    )


def lr_at(
    step: int, lr: float, min_lr: float, warmup_steps: int, total_steps: int, time_fraction: float = 0.0
) -> float:
    """Learning rate of optimizer step ``step`` (0-based): warm-up, then cosine to ``min_lr``; the
    cosine's progress is the larger of the step's and ``time_fraction`` (the share of a wall-time
    budget used up; 0 without one)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, max(progress, time_fraction))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine(LambdaLR):
    """:func:`lr_at` as a torch scheduler. Its state is the step and the ``time_fraction`` (set by a
    time-capped loop before each ``step()``): a resumed run follows the schedule of its current config."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int) -> None:
        if total_steps < 1:
            raise FourmError(f"total_steps must be >= 1, got {total_steps}")
        self.cfg, self.total_steps = cfg, total_steps
        self.time_fraction = 0.0
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] = cfg.lr
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        fraction = self.time_fraction
        return lr_at(step, self.cfg.lr, self.cfg.min_lr, self.cfg.warmup_steps, self.total_steps, fraction) / self.cfg.lr

    def state_dict(self) -> dict:
        return {"step": self.last_epoch, "time_fraction": self.time_fraction}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            raise FourmError(f"invalid scheduler state {state!r} (expected {{'step': int}})")
        fraction = state.get("time_fraction", 0.0)  # absent in checkpoints from before time caps
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not fraction >= 0:
            raise FourmError(f"invalid scheduler state {state!r} (time_fraction must be a number >= 0)")
        self.time_fraction = float(fraction)
        self.last_epoch = state["step"]
        self.base_lrs = [self.cfg.lr] * len(self.optimizer.param_groups)
        lrs = [base * self.factor(self.last_epoch) for base in self.base_lrs]
        for group, value in zip(self.optimizer.param_groups, lrs):
            group["lr"] = value
        self._last_lr = lrs
