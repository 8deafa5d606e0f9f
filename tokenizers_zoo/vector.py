"""Vector tokenizer: a global embedding (e.g. a 384-d sentence embedding) <-> ``num_tokens`` tokens.

An MLP encoder maps the vector to ``num_tokens`` chunks; each chunk is quantised by its own small VQ
codebook (product quantisation); token ``t`` of chunk ``j`` is ``j * codebook_size + t`` so all tokens
share one vocabulary of ``num_tokens * codebook_size``. An MLP decoder maps the codes back; the
reconstruction loss is MSE + (1 - cosine similarity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.utils.config import Config
from fourm.utils.precision import fast_bf16
from fourm.utils.weights import load_checked, save_pretrained_dir
from tokenizers_zoo.quantizers.vq import VectorQuantizer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class VectorTokenizerConfig(Config):
    """Sizes and loss weights of a :class:`VectorTokenizer`."""

    input_dim: int = 384
    hidden_dim: int = 512
    num_layers: int = 2  # linear layers before the code layer in the encoder (and after it in the decoder)
    num_tokens: int = 8  # tokens per vector = number of codebooks
    codebook_size: int = 256  # codes per codebook
    code_dim: int = 32  # size of each chunk / code vector
    beta: float = 0.25  # VQ commitment weight (VQ-VAE)
    use_ema: bool = True  # EMA codebooks: stable for small codebooks (VQ-VAE-2)
    ema_decay: float = 0.99
    l2_normalize: bool = False  # cosine codes (ViT-VQGAN)
    kmeans_init: bool = True  # codebooks from k-means of the first batch (poor random init)
    dead_code_steps: int = 50  # restart codes unused this many steps (codebook collapse)
    mse_weight: float = 1.0
    cosine_weight: float = 1.0

    def validate(self) -> None:
        for name in ("input_dim", "hidden_dim", "num_layers", "num_tokens", "code_dim"):
            if getattr(self, name) < 1:
                raise FourmError(f"vector tokenizer '{name}' must be >= 1, got {getattr(self, name)}")
        if self.codebook_size < 2:
            raise FourmError(f"vector tokenizer 'codebook_size' must be >= 2, got {self.codebook_size}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise FourmError(f"vector tokenizer 'ema_decay' must be in [0, 1), got {self.ema_decay}")
        for name in ("beta", "dead_code_steps", "mse_weight", "cosine_weight"):
            if getattr(self, name) < 0:
                raise FourmError(f"vector tokenizer '{name}' must be >= 0, got {getattr(self, name)}")


@dataclass
class VectorTokenizerOutput:
    """What :meth:`VectorTokenizer.forward` returns."""

    reconstruction: Tensor  # (B, input_dim)
    tokens: Tensor  # (B, num_tokens) long, in the shared vocabulary
    loss: Tensor  # scalar: reconstruction + mean VQ loss
    metrics: dict[str, Tensor] = field(default_factory=dict)  # mse, cosine, vq_loss, usage, perplexity


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> nn.Sequential:
    """``num_layers`` Linear+GELU blocks followed by a Linear to ``out_dim``."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_dim), nn.GELU()]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class VectorTokenizer(nn.Module):
    """Global vector (B, input_dim) <-> tokens (B, num_tokens) in a vocabulary of ``vocab_size``."""

    def __init__(self, cfg: VectorTokenizerConfig | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else VectorTokenizerConfig()
        self.cfg.validate()
        c = self.cfg
        latent = c.num_tokens * c.code_dim
        self.encoder = mlp(c.input_dim, c.hidden_dim, latent, c.num_layers)
        self.decoder = mlp(latent, c.hidden_dim, c.input_dim, c.num_layers)
        self.quantizers = nn.ModuleList(
            VectorQuantizer(
                c.code_dim,
                c.codebook_size,
                beta=c.beta,
                use_ema=c.use_ema,
                ema_decay=c.ema_decay,
                l2_normalize=c.l2_normalize,
                kmeans_init=c.kmeans_init,
                dead_code_steps=c.dead_code_steps,
            )
            for _ in range(c.num_tokens)
        )
        self.register_buffer("token_offsets", torch.arange(c.num_tokens) * c.codebook_size, persistent=False)

    @property
    def num_tokens(self) -> int:
        return self.cfg.num_tokens

    @property
    def vocab_size(self) -> int:
        return self.cfg.num_tokens * self.cfg.codebook_size

    def _check_vectors(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.cfg.input_dim:
            raise FourmError(f"expected vectors of shape (B, {self.cfg.input_dim}), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> VectorTokenizerOutput:
        """x: (B, input_dim) -> reconstruction, tokens and the training loss."""
        self._check_vectors(x)
        h = self.encoder(x).reshape(x.shape[0], self.num_tokens, self.cfg.code_dim)  # (B, T, C)
        outs = [q(h[:, j]) for j, q in enumerate(self.quantizers)]
        z_q = torch.stack([o.z_q for o in outs], dim=1)  # (B, T, C)
        indices = torch.stack([o.indices for o in outs], dim=1)  # (B, T)
        recon = self.decoder(z_q.flatten(1))  # (B, input_dim)
        mse = F.mse_loss(recon.float(), x.float())
        cosine = F.cosine_similarity(recon.float(), x.float(), dim=-1).mean()
        vq_loss = torch.stack([o.loss for o in outs]).mean()
        loss = self.cfg.mse_weight * mse + self.cfg.cosine_weight * (1.0 - cosine) + vq_loss
        metrics = {
            "mse": mse.detach(),
            "cosine": cosine.detach(),
            "vq_loss": vq_loss.detach(),
            "usage": torch.stack([o.metrics["usage"] for o in outs]).mean(),
            "perplexity": torch.stack([o.metrics["perplexity"] for o in outs]).mean(),
        }
        return VectorTokenizerOutput(recon, indices + self.token_offsets, loss, metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """x: (B, input_dim) -> LongTensor (B, num_tokens); never updates codebook statistics."""
        was_training = self.training
        self.eval()
        try:
            return self.forward(x).tokens
        finally:
            self.train(was_training)

    @torch.no_grad()
    def decode(self, tokens: Tensor) -> Tensor:
        """tokens: (B, num_tokens) in the shared vocabulary -> vectors (B, input_dim)."""
        if tokens.dim() != 2 or tokens.shape[1] != self.num_tokens:
            raise FourmError(f"expected tokens of shape (B, {self.num_tokens}), got {tuple(tokens.shape)}")
        local = tokens.long() - self.token_offsets  # (B, T) per-codebook indices
        if local.numel() and (int(local.min()) < 0 or int(local.max()) >= self.cfg.codebook_size):
            raise FourmError(
                f"token out of range for its position (position j needs tokens in "
                f"[j * {self.cfg.codebook_size}, (j + 1) * {self.cfg.codebook_size}))"
            )
        codes = [q.indices_to_latents(local[:, j]) for j, q in enumerate(self.quantizers)]  # each (B, C)
        z_q = torch.stack(codes, dim=1).to(self.decoder[0].weight.dtype)  # (B, T, C)
        return self.decoder(z_q.flatten(1))

    @torch.no_grad()
    def decode_probs(self, probs: Tensor) -> Tensor:
        """probs: (B, num_tokens, codebook_size), a distribution over each codebook's codes ->
        vectors (B, input_dim), decoded from the expected code of each codebook (one-hot probs give
        :meth:`decode`). Smoother than decoding argmax tokens when a prediction is uncertain."""
        t, k = self.num_tokens, self.cfg.codebook_size
        if probs.dim() != 3 or tuple(probs.shape[1:]) != (t, k):
            raise FourmError(f"expected code probabilities of shape (B, {t}, {k}), got {tuple(probs.shape)}")
        codes = torch.arange(k, device=probs.device)[None]  # (1, K)
        tables = torch.stack([q.indices_to_latents(codes)[0].t() for q in self.quantizers])  # (T, K, C)
        z_q = torch.einsum("btk,tkc->btc", probs.float(), tables.float())  # (B, T, C)
        return self.decoder(z_q.to(self.decoder[0].weight.dtype).flatten(1))

    def fit(
        self,
        vectors: Tensor | np.ndarray,
        steps: int = 1000,
        lr: float = 1e-3,
        batch_size: int = 256,
        weight_decay: float = 0.0,
        amp: bool = True,
        seed: int = 0,
        progress: bool = True,
    ) -> dict[str, float]:
        """Train on ``vectors`` (N, input_dim) with AdamW; returns final ``loss`` and eval ``cosine``/``usage``.

        ``amp`` runs the MLPs in bf16 autocast where the device runs bf16 natively
        (:mod:`fourm.utils.precision`; quantisers and losses stay fp32).
        """
        x_all = vectors if isinstance(vectors, Tensor) else torch.from_numpy(np.array(vectors, dtype=np.float32))
        x_all = x_all.float().to(self.token_offsets.device)
        self._check_vectors(x_all)
        if steps < 1 or lr <= 0 or batch_size < 1 or x_all.shape[0] == 0:
            raise FourmError(
                f"fit needs steps >= 1, lr > 0, batch_size >= 1 and vectors; got {steps}, {lr}, {batch_size}"
            )
        generator = torch.Generator(device="cpu").manual_seed(seed)
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + np.cos(np.pi * s / steps))
        )
        device_type = x_all.device.type
        self.train()
        loss_value = float("nan")
        bar = tqdm(range(steps), desc="fit vector tokenizer", disable=not progress)
        for _ in bar:
            rows = torch.randint(0, x_all.shape[0], (min(batch_size, x_all.shape[0]),), generator=generator)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp and fast_bf16(x_all.device)):
                out = self(x_all[rows.to(x_all.device)])
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            schedule.step()
            loss_value = float(out.loss.detach())
            bar.set_postfix(loss=f"{loss_value:.4f}", cos=f"{float(out.metrics['cosine']):.3f}")
        self.eval()
        for q in self.quantizers:
            q.usage.reset()
        cosines = []
        with torch.no_grad():
            for chunk in x_all.split(max(batch_size, 1024)):
                recon = self(chunk).reconstruction.float()
                cosines.append(F.cosine_similarity(recon, chunk, dim=-1))
        usage = float(np.mean([q.usage.usage() for q in self.quantizers]))
        return {"loss": loss_value, "cosine": float(torch.cat(cosines).mean()), "usage": usage}

    # ---- persistence ----------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into directory ``path`` (atomically)."""
        save_pretrained_dir(self, self.cfg, path)

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> VectorTokenizer:
        """Load a tokenizer saved by :meth:`save_pretrained`; FourmError for missing or corrupt files."""
        path = Path(path)
        if not path.is_dir():
            raise FourmError(f"vector tokenizer directory not found: {path}")
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / name).is_file():
                raise FourmError(f"{path} is not a saved vector tokenizer: missing {name}")
        cfg = VectorTokenizerConfig.from_file(path / CONFIG_NAME)
        model = cls(cfg)
        load_checked(model, path / WEIGHTS_NAME, f"weights in {path / WEIGHTS_NAME} do not match its config.json")
        return model.to(map_location).eval()
