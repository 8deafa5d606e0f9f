"""Pruning near-duplicate VQ codes after training.

Dead-code restarts can fill a codebook with near-copies of one frequent latent (e.g. a plain
background): the encoder then picks among them by noise, and a model predicting the tokens pays
for an unpredictable choice that changes nothing in the decoded image. Pruning disables every code
that lies closer than ``distance`` x (median nearest-neighbour distance of the used codes) to a
more frequently used code kept before it; disabled ids stay in the vocabulary but are never chosen
(``QuantizerConfig.disabled_codes``, saved in the tokenizer's config)::

    report = prune_near_duplicate_codes(tokenizer, train_images, distance=1.0)   # images (B, C, H, W)
    tokenizer.save_pretrained(out)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from fourm.errors import FourmError
from tokenizers_zoo.quantizers.vq import VectorQuantizer


@dataclass
class PruneReport:
    removed: int  # codes disabled by this call
    kept: int  # codes still enabled
    scale: float  # median nearest-neighbour distance between used codes (the unit of ``distance``)


def greedy_prune(codes: torch.Tensor, counts: torch.Tensor, radius: float, disabled: torch.Tensor) -> torch.Tensor:
    """(K,) bool: codes to disable. Visits codes by decreasing ``counts``; a code within ``radius``
    (L2) of an already kept code is disabled, else kept. ``disabled`` codes stay disabled."""
    order = torch.argsort(counts, descending=True, stable=True)
    kept: list[int] = []
    out = disabled.clone()
    for k in order.tolist():
        if disabled[k]:
            continue
        if kept and float(torch.cdist(codes[k : k + 1], codes[kept]).min()) < radius:
            out[k] = True
        else:
            kept.append(k)
    return out


@torch.no_grad()
def prune_near_duplicate_codes(tokenizer, images: torch.Tensor, distance: float, batch: int = 256) -> PruneReport:
    """Disable near-duplicate codes of ``tokenizer`` (an ImageTokenizer with a vq quantizer) in
    place, with code usage counted on ``images`` (model convention, e.g. (B, 3, H, W) in [-1, 1])."""
    q = tokenizer.quantizer
    if not isinstance(q, VectorQuantizer):
        raise FourmError(f"code pruning needs a vq quantizer, this tokenizer has {type(q).__name__}")
    if not distance > 0:
        raise FourmError(f"pruning distance must be > 0, got {distance}")
    if len(images) == 0:
        raise FourmError("code pruning needs at least one image to count code usage")
    counts = torch.zeros(q.codebook_size)
    for start in range(0, len(images), batch):
        ids = tokenizer.encode(images[start : start + batch])
        counts += torch.bincount(ids.reshape(-1), minlength=q.codebook_size).float()
    codes = q.codebook().detach().float()  # (K, C)
    used = (counts > 0) & ~q.disabled
    if int(used.sum()) < 2:
        raise FourmError("code pruning needs at least two used codes")
    d = torch.cdist(codes[used], codes[used])
    d.fill_diagonal_(float("inf"))
    scale = float(d.min(dim=1).values.median())
    before = int(q.disabled.sum())
    disabled = greedy_prune(codes, counts, distance * scale, q.disabled)
    q.disabled.copy_(disabled)
    ids = tuple(int(i) for i in torch.nonzero(disabled).flatten())
    tokenizer.cfg.quantizer = dataclasses.replace(tokenizer.cfg.quantizer, disabled_codes=ids)
    return PruneReport(removed=len(ids) - before, kept=q.codebook_size - len(ids), scale=scale)
