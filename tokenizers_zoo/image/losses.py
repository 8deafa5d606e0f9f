"""Losses for image tokenizers: per-modality reconstruction, VQGAN hinge GAN terms, perceptual loss.

Reconstruction, by modality (model convention tensors, see ``tokenizer.py``):
  rgb / depth / normals: L1 or L2 between decoder output and target in [-1, 1];
  semseg: cross-entropy between ``num_classes`` logits (B, K, H, W) and class ids (B, H, W);
  edges: binary cross-entropy between one logit map (B, 1, H, W) and targets in {0, 1}.
Keep these in fp32: callers pass outputs straight from a (possibly bf16) decoder; we upcast.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError

CONTINUOUS_MODALITIES = ("rgb", "depth", "normals")


def detail_weights(target: Tensor, weight: float) -> Tensor:
    """Per-pixel loss weights (B, 1, H, W) that favour detail: ``1 + weight * g / max(g)`` with ``g`` the
    target's local gradient magnitude (mean over channels, 3x3 max-pooled so both sides of an edge
    count), normalised per image. Flat regions (the ground) weigh 1, object outlines up to 1 + weight.
    target: (B, C, H, W)"""
    t = target.float()
    dx, dy = (t[..., :, 1:] - t[..., :, :-1]).abs(), (t[..., 1:, :] - t[..., :-1, :]).abs()
    gx = torch.maximum(F.pad(dx, (0, 1, 0, 0)), F.pad(dx, (1, 0, 0, 0)))  # on both pixels of a pair
    gy = torch.maximum(F.pad(dy, (0, 0, 0, 1)), F.pad(dy, (0, 0, 1, 0)))
    g = F.max_pool2d((gx + gy).mean(1, keepdim=True), 3, stride=1, padding=1)
    return 1.0 + weight * g / g.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)


def reconstruction_loss(
    modality: str,
    output: Tensor,
    target: Tensor,
    kind: str = "l1",
    edge_pos_weight: float = 1.0,
    detail_weight: float = 0.0,
) -> Tensor:
    """Scalar fp32 reconstruction loss for ``modality``; ``kind`` ("l1" | "l2") applies to continuous ones,
    with pixels weighted by :func:`detail_weights` when ``detail_weight`` > 0 (weighted mean)."""
    output = output.float()
    if modality == "semseg":
        return F.cross_entropy(output, target.long())
    if modality == "edges":
        pos_weight = torch.tensor(edge_pos_weight, device=output.device)
        return F.binary_cross_entropy_with_logits(output, target.float(), pos_weight=pos_weight)
    if modality not in CONTINUOUS_MODALITIES:
        raise FourmError(f"unknown image modality '{modality}' (known: rgb, depth, normals, semseg, edges)")
    if kind not in ("l1", "l2"):
        raise FourmError(f"unknown reconstruction loss '{kind}' (expected 'l1' or 'l2')")
    err = (output - target.float()).abs() if kind == "l1" else (output - target.float()) ** 2
    if detail_weight > 0:
        w = detail_weights(target, detail_weight)
        return (err * w).mean() / w.mean()
    return err.mean()


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator hinge loss: 0.5 * (E[relu(1 - D(x))] + E[relu(1 + D(x_hat))])."""
    return 0.5 * (F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean())


def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    """Generator hinge loss: -E[D(x_hat)]."""
    return -logits_fake.float().mean()


def adaptive_weight(rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4) -> Tensor:
    """VQGAN adaptive weight ||grad rec|| / (||grad gan|| + 1e-4) at ``last_layer`` (clamped, detached)."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.float().norm() / (g_grad.float().norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def disc_factor(step: int, disc_start: int) -> float:
    """1.0 once ``step >= disc_start`` (the discriminator has started), else 0.0."""
    return 1.0 if step >= disc_start else 0.0


class PerceptualNet(nn.Module):
    """Small VGG-like feature network: three (conv-ReLU-conv-ReLU, avg-pool) stages of 32/64/128 channels."""

    CHANNELS = (32, 64, 128)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        stages, ch = [], in_channels
        for out_ch in self.CHANNELS:
            stages.append(
                nn.Sequential(
                    nn.Conv2d(ch, out_ch, 3, padding=1),
                    nn.ReLU(),
                    nn.Conv2d(out_ch, out_ch, 3, padding=1),
                    nn.ReLU(),
                )
            )
            ch = out_ch
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:  # (B, C, H, W) -> per-stage features
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.avg_pool2d(x, 2))
            feats.append(x)
        return feats


class PerceptualLoss(nn.Module):
    """LPIPS-like distance: mean squared difference of channel-normalised :class:`PerceptualNet` features.

    The network's weights come from a safetensors file the user supplies (nothing is downloaded);
    they are frozen.
    """

    def __init__(self, weights_path: str | Path | None, in_channels: int = 3):
        super().__init__()
        self.net = PerceptualNet(in_channels)
        load_perceptual_weights(self.net, weights_path)
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.net.eval()  # frozen feature network
        return self

    def forward(self, output: Tensor, target: Tensor) -> Tensor:  # (B, C, H, W) x2 -> scalar fp32
        loss = output.new_zeros((), dtype=torch.float32)
        for fo, ft in zip(self.net(output), self.net(target)):
            fo, ft = F.normalize(fo.float(), dim=1, eps=1e-6), F.normalize(ft.float(), dim=1, eps=1e-6)
            loss = loss + (fo - ft).pow(2).sum(dim=1).mean()
        return loss


def load_perceptual_weights(net: PerceptualNet, weights_path: str | Path | None) -> None:
    """Load ``weights_path`` (safetensors) into ``net``; FourmError when missing, unreadable or mismatched."""
    if not weights_path:
        raise FourmError(
            "perceptual loss is enabled (loss.perceptual_weight > 0) but loss.perceptual_weights is not set "
            "(expected a path to a safetensors file with PerceptualNet weights)"
        )
    path = Path(weights_path)
    if not path.is_file():
        raise FourmError(f"perceptual weights file not found: {path} (expected a safetensors file)")
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises several error types for corrupt files
        raise FourmError(f"cannot read perceptual weights {path}: {e}") from None
    want = net.state_dict()
    if set(state) != set(want) or any(state[k].shape != want[k].shape for k in want):
        missing = sorted(set(want) - set(state))
        raise FourmError(
            f"perceptual weights {path} do not match PerceptualNet "
            f"(missing or mis-shaped tensors, e.g. {missing[:3] or 'shape mismatch'})"
        )
    net.load_state_dict(state)
