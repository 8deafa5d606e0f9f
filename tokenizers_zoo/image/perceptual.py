"""Train the perceptual loss's network on your own images, so nothing is downloaded: a
:class:`~tokenizers_zoo.image.losses.PerceptualNet` learns to segment the images (every stage's
features -> the classes of a semseg map by a 1x1 head, upsampled), then its weights alone are saved
for ``loss.perceptual_weights``. A tokenizer decoder trained with that loss must draw what tells the
classes apart, e.g. a small hexagon from a small circle (issue 16, round 17).

    fourm-tokenizer train-perceptual --data data/world --out runs/tok/shape_perceptual.safetensors
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_path
from fourm.utils.loop_state import LoopState, load_loop_state, save_loop_state
from tokenizers_zoo.image.losses import PerceptualNet


@dataclass
class PerceptualReport:
    """Steps done; held-out pixel accuracy of the last stage's head, overall and where the class is
    not ``background`` (object pixels)."""

    steps: int
    pixel_acc: float
    object_acc: float


def _to_input(rgb: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) in [-1, 1], the tokenizers' rgb convention."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _stage_logits(net: PerceptualNet, heads: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    size = x.shape[-2:]
    return [F.interpolate(h(f), size=size, mode="bilinear", align_corners=False) for f, h in zip(net(x), heads)]


def train_perceptual_net(
    rgb: np.ndarray,
    labels: np.ndarray,
    val_rgb: np.ndarray,
    val_labels: np.ndarray,
    num_classes: int,
    minutes: float = 7.0,
    max_steps: int | None = None,
    batch_size: int = 32,
    lr: float = 2e-3,
    background_weight: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    state_path: str | Path | None = None,
    save_every: int = 100,
) -> tuple[PerceptualNet, PerceptualReport]:
    """A PerceptualNet trained to segment ``rgb`` (N, H, W, 3) uint8 into ``labels`` (N, H, W) class ids
    for ``minutes`` (or ``max_steps``), random horizontal flips, class 0 (the background) weighted by
    ``background_weight`` so the few object pixels count. Returns the net and its held-out report.
    With ``state_path`` the loop's state is saved there every ``save_every`` steps
    (:mod:`fourm.utils.loop_state`) and a saved one is resumed, its training time counted in ``minutes``."""
    if num_classes < 2:
        raise FourmError(f"train_perceptual_net needs num_classes >= 2 (a background and a class), got {num_classes}")
    if len(rgb) != len(labels) or len(val_rgb) != len(val_labels) or not len(rgb) or not len(val_rgb):
        raise FourmError("train_perceptual_net needs as many label maps as images, and some of each split")
    if int(labels.max()) >= num_classes or int(val_labels.max()) >= num_classes:
        raise FourmError(f"label class id {int(max(labels.max(), val_labels.max()))} out of range (expected < {num_classes})")
    torch.manual_seed(seed)
    net = PerceptualNet(3)
    heads = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in PerceptualNet.CHANNELS)
    opt = torch.optim.AdamW([*net.parameters(), *heads.parameters()], lr=lr)
    weight = torch.ones(num_classes)
    weight[0] = background_weight
    rng = np.random.default_rng(seed)
    t0, step, losses = time.monotonic(), 0, []
    modules = {"net": net, "heads": heads}
    saved = load_loop_state(state_path, modules, opt) if state_path is not None else None
    if saved is not None:
        step, losses, t0 = saved.step, saved.losses, time.monotonic() - saved.elapsed
        rng.bit_generator.state = saved.extra["sampler"]
    bar = tqdm(desc="train perceptual net", disable=not progress, total=max_steps, initial=step)
    while (max_steps is None or step < max_steps) and time.monotonic() - t0 < minutes * 60:
        idx = rng.integers(0, len(rgb), batch_size)
        x, y = _to_input(rgb[idx]), torch.from_numpy(labels[idx].astype(np.int64))
        flip = torch.from_numpy(rng.random(batch_size) < 0.5)
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        loss = sum(F.cross_entropy(logits, y, weight=weight) for logits in _stage_logits(net, heads, x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if state_path is not None and step % save_every == 0:
            _save(state_path, step, losses, time.monotonic() - t0, rng, modules, opt)
    bar.close()
    if state_path is not None:  # the budget is spent: a rerun after a kill goes straight to the scoring
        _save(state_path, step, losses, max(time.monotonic() - t0, minutes * 60), rng, modules, opt)
    net.eval()
    with torch.no_grad():
        pred = torch.cat([_stage_logits(net, heads, _to_input(val_rgb[i : i + 128]))[-1].argmax(1)
                          for i in range(0, len(val_rgb), 128)]).numpy()  # fmt: skip
    objects = val_labels > 0
    object_acc = float((pred[objects] == val_labels[objects]).mean()) if objects.any() else float("nan")
    return net, PerceptualReport(step, float((pred == val_labels).mean()), object_acc)


def _save(path, step: int, losses: list[float], elapsed: float, rng: np.random.Generator, modules, opt) -> None:
    save_loop_state(path, LoopState(step, losses, elapsed, {"sampler": rng.bit_generator.state}), modules, opt)


def save_perceptual_net(net: PerceptualNet, path: str | Path) -> None:
    """Write ``net``'s weights (safetensors, atomically): a file for ``loss.perceptual_weights``."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
