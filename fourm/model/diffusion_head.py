"""A small denoising head for a continuous target (MAR / Transfusion style): the decoder's output
for a token conditions an MLP that predicts the noise added to that token's value.

Training (epsilon prediction): x0 = value * scale, t ~ U{0..T-1}, eps ~ N(0, I),
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, loss = mean (eps_hat(x_t, t, z) - eps)^2, with
``samples_per_token`` draws of (t, eps) per token (the head is cheap beside the trunk). The noise
schedule is the cosine one (``abar``: Nichol & Dhariwal 2021). Sampling: diffusers' DDIMScheduler
(eta 0, trailing timesteps, same betas) from pure noise, ``steps`` calls of the MLP::

    head = DiffusionHead(dim=256, value_dim=384, scale=384 ** 0.5)
    loss = head.loss(z, value)                     # z (n, D) decoder output, value (n, C)
    value = head.sample(z, steps=20, generator=g)  # (n, C)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def cosine_betas(num_steps: int, max_beta: float = 0.999) -> Tensor:
    """Betas (T,) of the cosine schedule: abar(s) = cos((s + 0.008) / 1.008 * pi / 2) ** 2 (float64)."""

    def abar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor(
        [min(1 - abar((i + 1) / num_steps) / abar(i / num_steps), max_beta) for i in range(num_steps)],
        dtype=torch.float64,
    )


def timestep_embedding(t: Tensor, width: int, max_period: float = 10000.0) -> Tensor:
    """Sin-cos features (n, width) of integer timesteps t (n,)."""
    half = width // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class _AdaLNBlock(nn.Module):
    """Residual MLP block whose LayerNorm shift / scale and output gate come from the condition (DiT's adaLN)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.modulation = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale, gate = self.modulation(F.silu(c)).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class DiffusionHead(nn.Module):
    """Epsilon-prediction MLP ``(x_t (n, C), t (n,), z (n, D)) -> eps_hat (n, C)`` with its schedule."""

    def __init__(
        self,
        dim: int,
        value_dim: int,
        width: int = 256,
        depth: int = 3,
        num_train_timesteps: int = 1000,
        scale: float = 1.0,
        samples_per_token: int = 4,
    ) -> None:
        super().__init__()
        self.value_dim, self.width, self.scale = value_dim, width, float(scale)
        self.num_train_timesteps, self.samples_per_token = num_train_timesteps, samples_per_token
        betas = cosine_betas(num_train_timesteps)
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)
        self.in_proj = nn.Linear(value_dim, width)
        self.cond_proj = nn.Linear(dim, width)
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList([_AdaLNBlock(width) for _ in range(depth)])
        self.out_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.out = nn.Linear(width, value_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor) -> Tensor:
        """Predicted noise (n, C) for noisy values x_t (n, C) at timesteps t (n,) given conditions z (n, D)."""
        c = self.cond_proj(z.float()) + self.time_mlp(timestep_embedding(t, self.width))
        x = self.in_proj(x_t.float())
        for block in self.blocks:
            x = block(x, c)
        return self.out(self.out_norm(x))

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, per row (t (n,))."""
        abar = self.alphas_cumprod[t][:, None]
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def loss(self, z: Tensor, value: Tensor) -> Tensor:
        """Mean epsilon MSE over ``samples_per_token`` draws of (t, noise) per row of z (n, D) / value (n, C)."""
        k = self.samples_per_token
        z, x0 = z.repeat(k, 1), (value.float() * self.scale).repeat(k, 1)
        t = torch.randint(0, self.num_train_timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        return F.mse_loss(self(self.add_noise(x0, noise, t), t, z).float(), noise)

    def scheduler(self, steps: int):
        """A diffusers DDIMScheduler on this head's betas, set to ``steps`` trailing timesteps."""
        from diffusers import DDIMScheduler  # noqa: PLC0415 - heavy optional import, sampling only

        sched = DDIMScheduler(
            num_train_timesteps=self.num_train_timesteps,
            trained_betas=self.betas.cpu().numpy(),
            clip_sample=False,
            set_alpha_to_one=True,
            prediction_type="epsilon",
            timestep_spacing="trailing",
        )
        sched.set_timesteps(steps)
        return sched

    @torch.no_grad()
    def sample(self, z: Tensor, steps: int = 20, generator: torch.Generator | None = None) -> Tensor:
        """Values (n, C) for conditions z (n, D): DDIM (eta 0) from noise in ``steps`` steps, / scale."""
        sched = self.scheduler(steps)
        x = torch.randn(z.shape[0], self.value_dim, generator=generator, device=z.device)
        for t in sched.timesteps:
            eps = self(x, torch.full((z.shape[0],), int(t), device=z.device, dtype=torch.long), z)
            x = sched.step(eps.float(), int(t), x).prev_sample
        return x / self.scale
