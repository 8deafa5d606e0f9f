"""Reconstruction metrics for image tokenizers, accumulated over an evaluation set.

PSNR (per image, averaged; data range 1 on the raw [0, 1] / uint8/255 scale) for rgb, depth and
normals (plus mean angular error for normals); pixel accuracy and mIoU for semseg; F1, precision,
recall and accuracy for edges. Inputs are model-convention tensors (see ``tokenizer.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB: (B, ...) x2 -> (B,); identical images give +inf capped at 100 dB."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(data_range**2 / mse.clamp_min(1e-10))).clamp(max=100.0)


class ReconstructionMetrics:
    """``update(pred, target)`` with model-convention batches, then ``compute() -> dict``."""

    def __init__(self, modality: str, num_classes: int | None = None):
        self.modality = modality
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sums: dict[str, float] = {}
        k = self.num_classes or 0
        self.confusion = torch.zeros(k, k, dtype=torch.long)  # semseg: [target, pred]
        self.edge_counts = torch.zeros(4, dtype=torch.long)  # tp, fp, fn, tn

    def _add(self, name: str, values: Tensor) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(values.double().sum())

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        pred, target = pred.detach().cpu(), target.detach().cpu()
        self.count += target.shape[0]
        if self.modality in ("rgb", "depth", "normals"):
            p01, t01 = (pred.float().clamp(-1, 1) + 1) / 2, (target.float() + 1) / 2  # raw [0, 1] scale
            self._add("psnr", psnr(p01, t01))
            self._add("mae", (p01 - t01).abs().flatten(1).mean(1))
            if self.modality == "normals":
                cos = F.cosine_similarity(pred.float(), target.float(), dim=1, eps=1e-6).clamp(-1, 1)
                self._add("angular_error_deg", torch.rad2deg(torch.acos(cos)).flatten(1).mean(1))
        elif self.modality == "semseg":
            k = self.num_classes
            idx = target.long().flatten() * k + pred.long().flatten().clamp(0, k - 1)
            self.confusion += torch.bincount(idx, minlength=k * k).reshape(k, k)
        else:
            p, t = pred.flatten() > 0.5, target.flatten() > 0.5
            self.edge_counts += torch.stack([(p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum()])

    def compute(self) -> dict[str, float]:
        if self.modality == "semseg":
            conf = self.confusion.double()
            inter = conf.diag()
            union = conf.sum(0) + conf.sum(1) - inter
            present = union > 0
            miou = float((inter[present] / union[present]).mean()) if present.any() else math.nan
            return {"pixel_accuracy": float(inter.sum() / conf.sum().clamp_min(1)), "miou": miou}
        if self.modality == "edges":
            tp, fp, fn, tn = (float(v) for v in self.edge_counts)
            precision = tp / max(tp + fp, 1.0)
            recall = tp / max(tp + fn, 1.0)
            f1 = 2 * precision * recall / max(precision + recall, 1e-12)
            return {
                "f1": f1,
                "precision": precision,
                "recall": recall,
                "accuracy": (tp + tn) / max(tp + fp + fn + tn, 1.0),
            }
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}


PRIMARY_METRIC = {
    "rgb": "psnr",
    "depth": "psnr",
    "normals": "psnr",
    "semseg": "pixel_accuracy",
    "edges": "f1",
}
