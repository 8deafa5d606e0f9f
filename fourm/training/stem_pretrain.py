"""Pre-training the CNN path of a ``conv_image`` patch stem on segmentation, then giving it to a FourM.

FourM trained end to end never formed shape features in its patch stem while it could read the pixels
linearly (docs/experiments/default_model.md, rounds 7-9), although a small CNN reads an object's shape
from the same pixels in seconds. Here the CNN path of :class:`fourm.model.patch_stem.ImageConvStem`
(its convolutions and norm, with a throwaway linear head) learns to predict, for each given patch, the
share of its pixels of each semantic class (soft cross-entropy, patches of background alone
down-weighted), with random patches withheld as
FourM's masking withholds them. :func:`with_pretrained_stem` then puts it into a trained FourM:
a linear stem is replaced (:func:`fourm.training.finetune.replace_patch_stem`: the old projection
becomes the linear path, the CNN path's output projection starts at zero, so the model computes what
it did) and the pretrained convolutions and norm are copied in.

    stem = ImageConvStem(patch_dim=192, dim=256, channels=3, width=32, length=64)
    head, losses = pretrain_image_stem(stem, rgb, semseg, classes=6, config=StemPretrainConfig(steps=2000))
    acc = object_shape_accuracy(stem, head, rgb_val, semseg_val)   # (S, 64, 64, 3) uint8, (S, 64, 64)
    model = with_pretrained_stem(FourM.from_pretrained(path), {"rgb_pixels": stem})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.model import FourM
from fourm.model.patch_stem import ImageConvStem, patch_values
from fourm.training.finetune import PATCH_PREFIX, replace_patch_stem
from fourm.training.optim import lr_at
from fourm.utils.loop_state import LoopState, load_loop_state, save_loop_state


@dataclass
class StemPretrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_given: float = 0.25  # each sample keeps a uniform share in [min_given, 1] of its patches
    background_weight: float = 0.1  # loss weight of a patch of class 0 alone (patches with any other: 1)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise FourmError(f"stem pretraining needs steps and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if not 0.0 < self.min_given <= 1.0:
            raise FourmError(f"min_given must be in (0, 1], got {self.min_given}")
        if self.background_weight < 0:
            raise FourmError(f"background_weight must be >= 0, got {self.background_weight}")


def image_patches(images: Tensor, patch: int) -> Tensor:
    """(B, H, W, C) uint8 -> (B, (H/p)^2, p*p*C) values in [-1, 1], laid out as
    :func:`fourm.core.patches.patchify` and scaled as the model scales patch levels."""
    b, h, w, c = images.shape
    if h != w or h % patch:
        raise FourmError(f"images must be square with a side divisible by {patch}, got {h}x{w}")
    g = h // patch
    grid = images.reshape(b, g, patch, g, patch, c).permute(0, 1, 3, 2, 4, 5).reshape(b, g * g, -1)
    return patch_values(grid)


def class_shares(labels: Tensor, patch: int, classes: int) -> Tensor:
    """(B, H, W) integer class map -> (B, (H/p)^2, classes): each patch's share of pixels per class."""
    b, h, w = labels.shape
    if int(labels.max()) >= classes or int(labels.min()) < 0:
        raise FourmError(f"class map values must be in [0, {classes}), got {int(labels.min())}..{int(labels.max())}")
    g = h // patch
    onehot = F.one_hot(labels.long(), classes).float()  # (B, H, W, K)
    return onehot.reshape(b, g, patch, g, patch, classes).mean(dim=(2, 4)).reshape(b, g * g, classes)


def random_given(batch: int, length: int, min_given: float, generator: torch.Generator) -> Tensor:
    """(B, N) bool: each row keeps a uniform number in [ceil(min_given * N), N] of its patches, at
    uniformly random positions."""
    low = max(1, math.ceil(min_given * length))
    keep = torch.randint(low, length + 1, (batch, 1), generator=generator)
    rank = torch.rand(batch, length, generator=generator).argsort(dim=1).argsort(dim=1)
    return rank < keep


def _forward(stem: ImageConvStem, head: nn.Linear, patches: Tensor, here: Tensor) -> Tensor:
    """Class logits (here.sum(), K) of the given patches."""
    position = torch.arange(patches.shape[1]).expand(patches.shape[0], -1)
    b, n = here.nonzero(as_tuple=True)
    return head(stem.cell_features(patches, position, b, n))


def pretrain_image_stem(
    stem: ImageConvStem,
    rgb: Tensor,
    labels: Tensor,
    classes: int,
    config: StemPretrainConfig | None = None,
    progress: bool = True,
    state_path: str | Path | None = None,
    save_every: int = 100,
) -> tuple[nn.Linear, list[float]]:
    """Train ``stem``'s convolutions and norm (not ``proj`` nor ``linear``) with a new linear head to
    predict each given patch's class shares from (S, H, W, C) uint8 images and (S, H, W) class maps
    (soft cross-entropy; a patch of background alone weighs ``config.background_weight``).
    Returns the head and the loss of every step. Deterministic for a given ``config.seed``.

    With ``state_path``, everything the loop needs (step, stem, head, optimizer, sampler state,
    losses) is saved there atomically every ``save_every`` steps and at the end, and a state found
    there is resumed: an interrupted run gives the same weights and losses as one run straight.
    The caller checks that the state belongs to the same inputs and config."""
    config = config or StemPretrainConfig()
    if rgb.shape[:3] != labels.shape:
        raise FourmError(f"images {tuple(rgb.shape)} and class maps {tuple(labels.shape)} do not match")
    if rgb.shape[-1] != stem.channels:
        raise FourmError(f"the stem reads {stem.channels} channels, the images have {rgb.shape[-1]}")
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        head = nn.Linear(stem.norm.normalized_shape[0], classes)
    params = [*stem.convs.parameters(), *stem.norm.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    losses: list[float] = []
    first = 0
    modules = {"stem": stem, "head": head}
    saved = load_loop_state(state_path, modules, opt) if state_path is not None else None
    if saved is not None:
        first, losses = saved.step, saved.losses
        generator.set_state(saved.extra["generator"])
        if first > config.steps:
            raise FourmError(f"{state_path} is at step {first}, past the {config.steps} steps asked for")
    for step in tqdm(range(first, config.steps), desc="stem pretraining", disable=not progress,
                     initial=first, total=config.steps):  # fmt: skip
        idx = torch.randint(0, rgb.shape[0], (config.batch_size,), generator=generator)
        patches = image_patches(rgb[idx], stem.side)
        target = class_shares(labels[idx], stem.side, classes)
        here = random_given(len(idx), patches.shape[1], config.min_given, generator)
        target = target[here]  # (n, K)
        weight = torch.where(target[:, 0] < 1.0, 1.0, config.background_weight)
        ce = -(target * F.log_softmax(_forward(stem, head, patches, here), dim=-1)).sum(-1)
        loss = (weight * ce).sum() / weight.sum().clamp_min(1e-9)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config.lr, 0.0, config.warmup_steps, config.steps)  # warm-up, cosine to 0
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        done = step + 1
        if state_path is not None and (done % save_every == 0 or done == config.steps):
            save_loop_state(state_path, LoopState(done, losses, extra={"generator": generator.get_state()}), modules, opt)
    return head, losses


@torch.no_grad()
def object_shape_accuracy(
    stem: ImageConvStem, head: nn.Linear, rgb: Tensor, labels: Tensor, batch: int = 256
) -> float:
    """Share of objects (the pixels of one non-background class of a scene) whose class the stem names
    with every patch given: the class (background excluded) with the largest predicted probability
    summed over the object's patches, each weighted by its share of the object's pixels."""
    classes = head.out_features
    right = total = 0
    for start in range(0, rgb.shape[0], batch):
        patches = image_patches(rgb[start : start + batch], stem.side)
        shares = class_shares(labels[start : start + batch], stem.side, classes)  # (B, N, K)
        here = torch.ones(patches.shape[:2], dtype=torch.bool)
        probs = _forward(stem, head, patches, here).softmax(-1).reshape(*patches.shape[:2], classes)
        weights = shares[..., 1:] / shares[..., 1:].sum(1, keepdim=True).clamp_min(1e-9)  # (B, N, K-1)
        score = torch.einsum("bnc,bnk->bck", weights, probs[..., 1:])  # (B, object class, named class)
        present = shares[..., 1:].sum(1) > 0  # (B, K-1)
        named = score.argmax(-1)  # (B, K-1)
        truth = torch.arange(classes - 1).expand_as(named)
        right += int(((named == truth) & present).sum())
        total += int(present.sum())
    if total == 0:
        raise FourmError("no objects (non-background pixels) in the class maps to score")
    return right / total


@torch.no_grad()
def with_pretrained_stem(model: FourM, stems: Mapping[str, ImageConvStem]) -> FourM:
    """``model`` with the convolutions and norm of ``stems`` (per pixel-patch modality) in its
    ``conv_image`` stems; a ``linear`` stem is first replaced so that the model starts computing what
    it did (:func:`replace_patch_stem`). Any other stem kind is refused."""
    if model.config.patch_stem == "linear":
        model, _ = replace_patch_stem(model, "conv_image")
    elif model.config.patch_stem != "conv_image":
        raise FourmError(f"a pretrained CNN path fits a linear or conv_image stem, not '{model.config.patch_stem}'")
    state = model.state_dict()
    for name, stem in stems.items():
        if f"{PATCH_PREFIX}{name}.proj.weight" not in state:
            raise FourmError(f"the model has no pixel-patch modality '{name}'")
        cnn = {k: v for k, v in stem.state_dict().items() if k.startswith(("convs.", "norm."))}
        for key, value in cnn.items():
            target = state.get(f"{PATCH_PREFIX}{name}.{key}")
            if target is None or target.shape != value.shape:
                shape = "missing" if target is None else tuple(target.shape)
                raise FourmError(
                    f"pretrained stem '{name}': {key} is {tuple(value.shape)}, the model's {shape} "
                    f"(patch_stem_width or patch size differ)"
                )
            target.copy_(value)
    return model

