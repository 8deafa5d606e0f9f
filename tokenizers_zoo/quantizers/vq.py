"""Vector quantisation: nearest-code lookup with the straight-through estimator (van den Oord et al. 2017).

Options: EMA codebook updates, low-dimensional and l2-normalised codes (ViT-VQGAN), k-means
initialisation and dead-code restarts. Statistics for usage/dead codes live in buffers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from tokenizers_zoo.quantizers.base import (
    CodebookUsage,
    Quantizer,
    QuantizerOutput,
    all_reduce_sum,
    broadcast_,
    channels_last_flat,
    linear_fp32,
    no_autocast,
    unflatten_channels_first,
    usage_metrics,
)

REPORT_DEAD_STEPS = 100  # without a restart criterion, "dead" (for the metric) = unused this many steps
KMEANS_MAX_POINTS = 65536  # k-means init subsamples the batch to bound its cost


@torch.no_grad()
def nearest_code(x: Tensor, codes: Tensor, disabled: Tensor | None = None) -> Tensor:
    """Index of the nearest code (squared L2) for each row: x (N, C), codes (K, C) -> (N,) long;
    codes where ``disabled`` (K,) bool is true are never chosen.

    Processed in chunks so the (chunk, K) distance matrix stays around 64 MB.
    """
    codes_sq = codes.pow(2).sum(1)  # (K,)
    if disabled is not None and bool(disabled.any()):
        codes_sq = codes_sq.masked_fill(disabled, float("inf"))
    chunk = max(1, (1 << 24) // max(1, codes.shape[0]))
    out = []
    for start in range(0, x.shape[0], chunk):
        xs = x[start : start + chunk]
        dist = codes_sq[None, :] - 2.0 * (xs @ codes.t())  # (n, K); ||x||^2 is constant per row
        out.append(dist.argmin(dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


@torch.no_grad()
def kmeans(x: Tensor, k: int, iters: int = 10, spherical: bool = False) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on x (N, C): returns centroids (k, C) and cluster sizes (k,) float.

    Centroids start at random rows (with replacement when N < k); empty clusters keep their centroid.
    ``spherical`` re-normalises centroids to unit norm (for cosine codebooks).
    """
    n = x.shape[0]
    if n >= k:
        start = torch.randperm(n, device=x.device)[:k]
    else:
        start = torch.randint(0, n, (k,), device=x.device)
    centroids = x[start].clone()
    for _ in range(iters):
        assign = nearest_code(x, centroids)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        new = sums / counts.clamp_min(1.0)[:, None]
        if spherical:
            new = F.normalize(new, dim=-1)
        centroids = torch.where(counts[:, None] > 0, new, centroids)
    counts = torch.bincount(nearest_code(x, centroids), minlength=k).to(x.dtype)
    return centroids, counts


class VectorQuantizer(Quantizer):
    """Nearest-neighbour VQ. loss = ||sg[z] - e||^2 + beta * ||z - sg[e]||^2 (codebook term dropped with EMA).

    ``forward(z: (B, dim, *spatial))`` -> QuantizerOutput; metrics: perplexity, usage, dead_codes,
    codebook_loss, commitment_loss. Training-mode forwards update the codebook statistics.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        code_dim: int | None = None,  # low-dim code space with linear in/out projections (ViT-VQGAN)
        beta: float = 0.25,  # commitment weight: keeps the encoder close to its codes (VQ-VAE)
        use_ema: bool = False,  # EMA cluster-mean codebook updates, no codebook loss (VQ-VAE-2)
        ema_decay: float = 0.99,
        l2_normalize: bool = False,  # cosine codes on the unit sphere, better usage (ViT-VQGAN)
        kmeans_init: bool = False,  # codebook from k-means of the first training batch (poor init)
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.0,  # restart codes with EMA count below this (codebook collapse)
        dead_code_steps: int = 0,  # restart codes unused for this many training steps (codebook collapse)
        ema_eps: float = 1e-5,  # Laplace smoothing of EMA cluster sizes (no division by zero)
        disabled_codes: tuple[int, ...] = (),  # ids never chosen (pruned near-duplicates)
    ):
        super().__init__()
        if dim < 1 or codebook_size < 2:
            raise FourmError(
                f"VectorQuantizer needs dim >= 1 and codebook_size >= 2, got {dim}, {codebook_size}"
            )
        if code_dim is not None and code_dim < 1:
            raise FourmError(f"VectorQuantizer code_dim must be >= 1, got {code_dim}")
        if not 0.0 <= ema_decay < 1.0:
            raise FourmError(f"VectorQuantizer ema_decay must be in [0, 1), got {ema_decay}")
        if beta < 0 or dead_code_threshold < 0 or dead_code_steps < 0 or kmeans_iters < 0:
            raise FourmError(
                "VectorQuantizer beta, dead_code_threshold, dead_code_steps, kmeans_iters must be >= 0"
            )
        self.dim = dim
        self.codebook_size = codebook_size
        self.code_dim = code_dim if code_dim is not None else dim
        self.beta = beta
        self.use_ema = use_ema
        self.ema_decay = ema_decay
        self.ema_eps = ema_eps
        self.l2_normalize = l2_normalize
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.dead_code_steps = dead_code_steps

        projected = self.code_dim != dim
        self.project_in = nn.Linear(dim, self.code_dim) if projected else nn.Identity()
        self.project_out = nn.Linear(self.code_dim, dim) if projected else nn.Identity()

        init = torch.empty(codebook_size, self.code_dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        if l2_normalize:
            init = F.normalize(torch.randn(codebook_size, self.code_dim), dim=-1)
        if use_ema:
            self.register_buffer("embedding", init)  # (K, C), updated by EMA, not by the optimiser
        else:
            self.embedding = nn.Parameter(init)  # (K, C)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        # EMA statistics (bias-corrected via ema_steps); counts are tracked in every mode for restarts
        self.register_buffer("ema_cluster_size", torch.zeros(codebook_size))  # (K,)
        self.register_buffer("ema_embed_sum", torch.zeros(codebook_size, self.code_dim) if use_ema else None)
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps_since_used", torch.zeros(codebook_size, dtype=torch.long))  # (K,)
        self.usage = CodebookUsage(codebook_size)  # running histogram; reset() before an eval pass
        disabled = torch.zeros(codebook_size, dtype=torch.bool)
        disabled[list(disabled_codes)] = True
        self.register_buffer("disabled", disabled, persistent=False)  # (K,), from the config

    # ---- codebook -------------------------------------------------------------------------------

    def codebook(self) -> Tensor:
        """The (K, code_dim) code vectors used for lookup (unit-norm when l2_normalize)."""
        codes = self.embedding.float()
        return F.normalize(codes, dim=-1) if self.l2_normalize else codes

    def ema_counts(self) -> Tensor:
        """Bias-corrected EMA of how many vectors each code received per training step: (K,)."""
        steps = int(self.ema_steps)
        if steps == 0:
            return self.ema_cluster_size.clone()
        return self.ema_cluster_size / (1.0 - self.ema_decay**steps)

    def dead_mask(self) -> Tensor:
        """(K,) bool: codes counted as dead under the configured criteria (see class options)."""
        mask = torch.zeros(self.codebook_size, dtype=torch.bool, device=self.steps_since_used.device)
        if self.dead_code_steps > 0:
            mask |= self.steps_since_used >= self.dead_code_steps
        if self.dead_code_threshold > 0 and int(self.ema_steps) > 0:
            mask |= self.ema_counts() < self.dead_code_threshold
        if self.dead_code_steps == 0 and self.dead_code_threshold == 0:
            mask |= self.steps_since_used >= REPORT_DEAD_STEPS
        return mask & ~self.disabled  # disabled codes are unused by design, never restarted

    def _restart_enabled(self) -> bool:
        return self.dead_code_steps > 0 or self.dead_code_threshold > 0

    def _set_codes(self, which: Tensor, vectors: Tensor) -> None:
        """Overwrite codes ``which`` (bool (K,) or long) with ``vectors`` without autograd tracking."""
        with torch.no_grad():
            self.embedding.data[which] = vectors.to(self.embedding.dtype)

    @torch.no_grad()
    def _kmeans_init(self, z_e: Tensor) -> None:
        """Set the codebook to k-means centroids of this batch's (sub-sampled) encoder outputs."""
        points = z_e
        if points.shape[0] > KMEANS_MAX_POINTS:
            points = points[torch.randperm(points.shape[0], device=points.device)[:KMEANS_MAX_POINTS]]
        centroids, counts = kmeans(points, self.codebook_size, self.kmeans_iters, spherical=self.l2_normalize)
        broadcast_(centroids)  # all processes start from rank 0's codebook
        broadcast_(counts)
        self._set_codes(slice(None), centroids)
        if self.use_ema:  # count the k-means result as one EMA observation
            self.ema_cluster_size.copy_(counts * (1.0 - self.ema_decay))
            self.ema_embed_sum.copy_(centroids * self.ema_cluster_size[:, None])
            self.ema_steps.fill_(1)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _restart_dead_codes(self, z_e: Tensor) -> int:
        """Re-initialise dead codes from random rows of ``z_e`` (N, C); returns how many."""
        dead = self.dead_mask()
        num_dead = int(dead.sum())
        if num_dead == 0 or z_e.shape[0] == 0:
            return 0
        n = z_e.shape[0]
        rows = (
            torch.randperm(n, device=z_e.device)[:num_dead]
            if n >= num_dead
            else torch.randint(0, n, (num_dead,), device=z_e.device)
        )
        new_codes = z_e[rows].clone()
        broadcast_(new_codes)  # same replacements on every process
        self._set_codes(dead, new_codes)
        self.steps_since_used[dead] = 0
        if int(self.ema_steps) > 0:  # give restarted codes a fresh, alive EMA count
            alive_count = max(self.dead_code_threshold, 1.0) * (1.0 - self.ema_decay ** int(self.ema_steps))
            self.ema_cluster_size[dead] = alive_count
            if self.use_ema:
                self.ema_embed_sum[dead] = new_codes * alive_count
        return num_dead

    @torch.no_grad()
    def _update_statistics(self, z_e: Tensor, indices: Tensor) -> None:
        """After a training step: usage counters, EMA cluster sizes and (with use_ema) the codes."""
        onehot_counts = torch.bincount(indices, minlength=self.codebook_size).float()  # (K,)
        all_reduce_sum(onehot_counts)
        self.steps_since_used += 1
        self.steps_since_used[onehot_counts > 0] = 0
        decay = self.ema_decay
        self.ema_cluster_size.mul_(decay).add_(onehot_counts, alpha=1.0 - decay)
        self.ema_steps += 1
        if not self.use_ema:
            return
        sums = torch.zeros_like(self.ema_embed_sum).index_add_(0, indices, z_e.float())  # (K, C)
        all_reduce_sum(sums)
        self.ema_embed_sum.mul_(decay).add_(sums, alpha=1.0 - decay)
        total = self.ema_cluster_size.sum()
        k = self.codebook_size
        smoothed = (self.ema_cluster_size + self.ema_eps) / (total + k * self.ema_eps) * total  # Laplace
        assigned = onehot_counts > 0  # codes with no vector this step keep their value
        self.embedding[assigned] = self.ema_embed_sum[assigned] / smoothed[assigned, None]

    # ---- forward --------------------------------------------------------------------------------

    def forward(self, z: Tensor) -> QuantizerOutput:
        """z: (B, dim, *spatial) -> z_q (same shape and dtype), indices (B, *spatial)."""
        self.check_input(z)
        with no_autocast(z):
            flat, lead = channels_last_flat(z.float())  # (N, dim)
            z_e = linear_fp32(self.project_in, flat)  # (N, C)
            if self.l2_normalize:
                z_e = F.normalize(z_e, dim=-1)
            if self.training:
                if not bool(self.initialized):
                    self._kmeans_init(z_e.detach())
                if self._restart_enabled():
                    self._restart_dead_codes(z_e.detach())
            codes = self.codebook()  # (K, C)
            indices = nearest_code(z_e.detach(), codes.detach(), self.disabled)  # (N,)
            q = F.embedding(indices, codes)  # (N, C), carries the codebook gradient
            commitment_loss = F.mse_loss(z_e, q.detach())
            if self.use_ema:
                codebook_loss = torch.zeros((), device=z.device)
            else:
                codebook_loss = F.mse_loss(q, z_e.detach())
            loss = codebook_loss + self.beta * commitment_loss
            z_q = linear_fp32(self.project_out, z_e + (q - z_e).detach())  # straight-through estimator
            if self.training:
                self._update_statistics(z_e.detach(), indices)
            self.usage.update(indices)
            metrics = usage_metrics(indices, self.codebook_size)
            metrics["dead_codes"] = self.dead_mask().sum().float()
            metrics["codebook_loss"] = codebook_loss.detach()
            metrics["commitment_loss"] = commitment_loss.detach()
        z_q = unflatten_channels_first(z_q, lead).to(z.dtype)
        return QuantizerOutput(z_q=z_q, indices=indices.reshape(lead), loss=loss, metrics=metrics)

    def indices_to_latents(self, indices: Tensor) -> Tensor:
        """(B, *spatial) long -> (B, dim, *spatial) fp32 latents."""
        self.check_indices(indices)
        with no_autocast(indices):
            flat = F.embedding(indices.reshape(-1).long(), self.codebook())  # (N, C)
            out = linear_fp32(self.project_out, flat)  # (N, dim)
        return unflatten_channels_first(out, tuple(indices.shape))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, code_dim={self.code_dim}, beta={self.beta}, "
            f"use_ema={self.use_ema}, l2_normalize={self.l2_normalize}"
        )
