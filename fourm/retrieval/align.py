"""Linear cross-modal alignment of pooled features: generalized CCA (MAXVAR) fitted on paired items.

A FourM encoder is not trained to put a caption and its image at the same point: their pooled
outputs share information (object count, colours, ...) but in different directions. Canonical
correlation analysis finds, from paired training items, the linear maps under which the modalities
agree most. With M modalities, MAXVAR generalized CCA (Kettenring 1971; Carroll 1968) whitens each
modality's centred features, stacks them side by side and keeps the top-``dim`` principal
directions of the stack; for M = 2 it is ordinary CCA. Each shared dimension is weighted by its
canonical correlation (to the power ``power``), so weakly shared directions count less in cosine
similarities.

    align = fit_gcca({"caption": cap_feats, "rgb": rgb_feats}, dim=32)    # (N, D) each, row i paired
    z = align.project("caption", feats)                                     # (B, D) -> (B, 32)
    align.correlations                                                      # (32,) in [0, 1], descending
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from fourm.errors import FourmError

PREFIX = "align."


@dataclass
class LinearAlignment:
    """Per-modality centring and projection into a shared ``dim``-d space, weighted per dimension.

    ``means[m]``: (D_m,); ``projections[m]``: (D_m, dim); ``correlations``: (dim,) canonical
    correlations, descending; ``power``: exponent of the correlation weights (0 = unweighted)."""

    means: dict[str, Tensor]
    projections: dict[str, Tensor]
    correlations: Tensor
    power: float = 1.0

    @property
    def dim(self) -> int:
        return int(self.correlations.numel())

    @property
    def modalities(self) -> list[str]:
        return list(self.projections)

    def project(self, modality: str, features: Tensor) -> Tensor:
        """Pooled features (B, D_m) of ``modality`` -> weighted canonical variates (B, dim) fp32."""
        if modality not in self.projections:
            raise FourmError(
                f"the alignment has no map for modality '{modality}' (fitted on: {', '.join(self.modalities)})"
            )
        proj = self.projections[modality]
        if features.dim() != 2 or features.shape[1] != proj.shape[0]:
            raise FourmError(
                f"'{modality}' features must be (B, {proj.shape[0]}) for the alignment, got {tuple(features.shape)}"
            )
        weights = self.correlations.clamp(min=0.0) ** self.power
        return ((features.float() - self.means[modality]) @ proj) * weights

    def to_tensors(self) -> dict[str, Tensor]:
        """Flat tensors (for safetensors), keys ``align.<modality>.mean|projection``, ``align.correlations``
        and ``align.power``."""
        out = {f"{PREFIX}correlations": self.correlations, f"{PREFIX}power": torch.tensor([self.power])}
        for m in self.modalities:
            out[f"{PREFIX}{m}.mean"] = self.means[m]
            out[f"{PREFIX}{m}.projection"] = self.projections[m]
        return out

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Tensor]) -> LinearAlignment | None:
        """Inverse of :meth:`to_tensors` (other keys are ignored); None when there is no alignment."""
        if f"{PREFIX}correlations" not in tensors:
            return None
        means, projections = {}, {}
        for key, value in tensors.items():
            if key.startswith(PREFIX) and key.endswith(".projection"):
                name = key[len(PREFIX) : -len(".projection")]
                if f"{PREFIX}{name}.mean" not in tensors:
                    raise FourmError(f"corrupt alignment: '{name}' has a projection but no mean")
                projections[name] = value.float()
                means[name] = tensors[f"{PREFIX}{name}.mean"].float()
        power = tensors.get(f"{PREFIX}power", torch.tensor([1.0]))
        return cls(means, projections, tensors[f"{PREFIX}correlations"].float(), float(power.reshape(-1)[0]))


def _inverse_sqrt(cov: Tensor) -> Tensor:
    """Symmetric positive-definite (D, D) -> its inverse square root (D, D)."""
    values, vectors = torch.linalg.eigh(cov)
    return (vectors * values.clamp(min=1e-12).rsqrt()) @ vectors.T


def fit_gcca(features: Mapping[str, Tensor], dim: int = 32, ridge: float = 1e-3, power: float = 1.0) -> LinearAlignment:
    """MAXVAR generalized CCA of paired ``features`` {modality: (N, D_m)} (row i of every modality is
    the same sample). ``ridge``: added to each covariance as a fraction of its mean variance
    (regularises small N / large D); ``dim``: shared dimensions kept (at most the smallest D_m)."""
    names = list(features)
    if len(names) < 2:
        raise FourmError(f"an alignment needs paired features of at least two modalities, got {names or 'none'}")
    mats = {m: torch.as_tensor(features[m]).detach().double().cpu() for m in names}
    sizes = {m: x.shape[0] for m, x in mats.items()}
    for m, x in mats.items():
        if x.dim() != 2:
            raise FourmError(f"'{m}' features must be a matrix (N, D), got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise FourmError(f"'{m}' features hold NaN or infinite values")
    if len(set(sizes.values())) != 1:
        raise FourmError(f"paired features need the same number of rows, got {sizes}")
    n = next(iter(sizes.values()))
    max_dim = min(x.shape[1] for x in mats.values())
    if not 1 <= dim <= max_dim:
        raise FourmError(f"alignment dim must be in [1, {max_dim}] (the smallest feature size), got {dim}")
    if n < 2 * dim:
        raise FourmError(f"an alignment of dim {dim} needs at least {2 * dim} paired samples, got {n}")
    if ridge < 0 or not math.isfinite(ridge):
        raise FourmError(f"alignment ridge must be >= 0, got {ridge}")
    means, whiteners, blocks = {}, {}, []
    for m, x in mats.items():
        means[m] = x.mean(dim=0)
        xc = x - means[m]
        cov = xc.T @ xc / n
        cov = cov + (ridge * cov.trace() / cov.shape[0] + 1e-12) * torch.eye(cov.shape[0], dtype=cov.dtype)
        whiteners[m] = _inverse_sqrt(cov)
        blocks.append(xc @ whiteners[m])  # (N, D_m), ~identity covariance
    stacked = torch.cat(blocks, dim=1)  # (N, sum D)
    values, vectors = torch.linalg.eigh(stacked.T @ stacked / n)  # ascending
    values, vectors = values.flip(0)[:dim], vectors.flip(1)[:, :dim]  # (dim,), (sum D, dim)
    # with M whitened views a direction shared by all of them with correlation r has eigenvalue 1 + (M - 1) r
    correlations = ((values - 1.0) / (len(names) - 1)).clamp(0.0, 1.0)
    projections, start = {}, 0
    for m in names:
        width = mats[m].shape[1]
        # sqrt(M): each modality's variates get ~unit variance
        projections[m] = (whiteners[m] @ vectors[start : start + width] * math.sqrt(len(names))).float()
        start += width
    return LinearAlignment({m: v.float() for m, v in means.items()}, projections, correlations.float(), float(power))
