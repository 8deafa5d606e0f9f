"""A small denoising head for a continuous target (MAR / Transfusion style): the decoder's output
for a token conditions an MLP that denoises that token's value.

Training: x0 = value * scale, t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,
loss = mean (f(x_t, t, z) - target)^2 with ``samples_per_token`` draws of (t, eps) per token (the
head is cheap beside the trunk). Two parameterisations (``prediction_type`` / ``schedule``):

* ``v_prediction`` on ``cosine_zero_snr`` (the default): target v = sqrt(abar) eps - sqrt(1 - abar) x0
  on the cosine schedule rescaled so that abar_T = 0 exactly (Lin et al. 2024, "Common diffusion noise
  schedules and sample steps are flawed"). At t = T the estimate x0 = -v is read off directly.
* ``epsilon`` on ``cosine`` (the first version): target eps on the cosine schedule (Nichol & Dhariwal
  2021), abar_T ~ 2e-9; DDIM's first x0 = (x - sqrt(1 - abar) eps) / sqrt(abar) multiplies the error of
  eps by ~2e4, so sampling fails unless eps is near-perfect at t = T.

The parameterisation is a constructor argument; the schedule buffers are not in the state dict, so a
FourM records it in its config (:class:`fourm.model.config.ModalityConfig` ``value_prediction`` /
``value_schedule``; a saved config without them loads as ``epsilon`` / ``cosine``, the first version).
Sampling: diffusers' DDIMScheduler (eta 0, trailing timesteps, the head's betas and prediction type)
from pure noise, ``steps`` calls of the MLP::

    head = DiffusionHead(dim=256, value_dim=384, scale=384 ** 0.5)
    loss = head.loss(z, value)                     # z (n, D) decoder output, value (n, C)
    value = head.sample(z, steps=20, generator=g)  # (n, C)
"""

from __future__ import annotations

import math
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.model.config import ValuePrediction, ValueSchedule

PREDICTION_TYPES = get_args(ValuePrediction)  # what the MLP outputs (diffusers' names)
SCHEDULES = get_args(ValueSchedule)  # betas: cosine rescaled to abar_T = 0, or cosine


def cosine_betas(num_steps: int, max_beta: float = 0.999) -> Tensor:
    """Betas (T,) of the cosine schedule: abar(s) = cos((s + 0.008) / 1.008 * pi / 2) ** 2 (float64)."""

    def abar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor(
        [min(1 - abar((i + 1) / num_steps) / abar(i / num_steps), max_beta) for i in range(num_steps)],
        dtype=torch.float64,
    )


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Betas (T,) whose sqrt(abar) is shifted and scaled so that sqrt(abar_0) is kept and abar_T = 0
    (the last beta becomes 1): no signal is left at the last training step, as at sampling (float64)."""
    root = torch.cumprod(1 - betas.double(), 0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    abar = ((root - last) * first / (first - last)) ** 2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return 1 - alphas


def make_betas(schedule: str, num_steps: int) -> Tensor:
    """Betas (T,) of a named schedule (:data:`SCHEDULES`)."""
    if schedule not in SCHEDULES:
        raise FourmError(f"unknown diffusion schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
    betas = cosine_betas(num_steps)
    return rescale_zero_terminal_snr(betas) if schedule == "cosine_zero_snr" else betas


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
    """Denoising MLP ``(x_t (n, C), t (n,), z (n, D)) -> eps_hat or v_hat (n, C)`` with its schedule."""

    def __init__(
        self,
        dim: int,
        value_dim: int,
        width: int = 256,
        depth: int = 3,
        num_train_timesteps: int = 1000,
        scale: float = 1.0,
        samples_per_token: int = 4,
        prediction_type: str = "v_prediction",
        schedule: str = "cosine_zero_snr",
    ) -> None:
        super().__init__()
        self.value_dim, self.width, self.scale = value_dim, width, float(scale)
        self.num_train_timesteps, self.samples_per_token = num_train_timesteps, samples_per_token
        if prediction_type not in PREDICTION_TYPES:
            raise FourmError(
                f"unknown diffusion prediction_type {prediction_type!r} (known: {', '.join(PREDICTION_TYPES)})"
            )
        betas = make_betas(schedule, num_train_timesteps)
        self.prediction_type, self.schedule = prediction_type, schedule
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
        """The prediction (n, C) for noisy values x_t (n, C) at timesteps t (n,) given conditions z (n, D)."""
        c = self.cond_proj(z.float()) + self.time_mlp(timestep_embedding(t, self.width))
        x = self.in_proj(x_t.float())
        for block in self.blocks:
            x = block(x, c)
        return self.out(self.out_norm(x))

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, per row (t (n,))."""
        abar = self.alphas_cumprod[t][:, None]
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the MLP learns to output (n, C): the noise, or v = sqrt(abar_t) noise - sqrt(1 - abar_t) x0."""
        if self.prediction_type == "epsilon":
            return noise
        abar = self.alphas_cumprod[t][:, None]
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    def loss(self, z: Tensor, value: Tensor, t: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Mean MSE to :meth:`target` over ``samples_per_token`` draws of (t, noise) per row of z (n, D) /
        value (n, C); ``t`` (k n,) and ``noise`` (k n, C) may be given (rows of draw j are j n ... (j+1) n - 1)."""
        k = self.samples_per_token
        z, x0 = z.repeat(k, 1), (value.float() * self.scale).repeat(k, 1)
        if t is None:
            t = torch.randint(0, self.num_train_timesteps, (x0.shape[0],), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        return F.mse_loss(self(self.add_noise(x0, noise, t), t, z).float(), self.target(x0, noise, t))

    def scheduler(self, steps: int):
        """A diffusers DDIMScheduler on this head's betas and prediction type, set to ``steps`` trailing timesteps."""
        from diffusers import DDIMScheduler  # noqa: PLC0415 - heavy optional import, sampling only

        if not 1 <= int(steps) <= self.num_train_timesteps:
            raise FourmError(f"diffusion steps must be in 1..{self.num_train_timesteps}, got {steps}")
        sched = DDIMScheduler(
            num_train_timesteps=self.num_train_timesteps,
            trained_betas=self.betas.cpu().numpy(),
            clip_sample=False,
            set_alpha_to_one=True,
            prediction_type=self.prediction_type,
            timestep_spacing="trailing",
        )
        sched.set_timesteps(int(steps))
        return sched

    @torch.no_grad()
    def sample(self, z: Tensor, steps: int = 20, generator: torch.Generator | None = None) -> Tensor:
        """Values (n, C) for conditions z (n, D): DDIM (eta 0) from noise in ``steps`` steps, / scale."""
        sched = self.scheduler(steps)
        x = torch.randn(z.shape[0], self.value_dim, generator=generator, device=z.device)
        for t in sched.timesteps:
            out = self(x, torch.full((z.shape[0],), int(t), device=z.device, dtype=torch.long), z)
            x = sched.step(out.float(), int(t), x).prev_sample
        return x / self.scale
