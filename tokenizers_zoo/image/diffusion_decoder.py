"""Diffusion decoder: a small ``diffusers.UNet2DModel`` that denoises an image conditioned on latents.

The quantised latents (B, D, h, w) are upsampled (nearest) to the image size and concatenated to
the noisy image along channels. Training uses the DDPM objective (predict the noise, or ``x0`` /
``v`` by choice); decoding runs deterministic DDIM sampling (``diffusers.DDIMScheduler``) for a
configurable number of steps, starting from seeded noise so the same tokens give the same image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


class DiffusionDecoder(nn.Module):
    """Conditional UNet denoiser over (B, C_out, H, W) images given latents (B, D, h, w)."""

    def __init__(
        self,
        out_channels: int,
        latent_dim: int,
        image_size: int,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        num_train_timesteps: int = 1000,
        sample_steps: int = 20,
        prediction_type: str = "epsilon",
        beta_schedule: str = "squaredcos_cap_v2",
    ):
        super().__init__()
        from diffusers import UNet2DModel

        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        groups = min(32, *[c // 4 for c in block_out_channels]) or 1
        while any(c % groups for c in block_out_channels):
            groups -= 1
        self.unet = UNet2DModel(
            sample_size=image_size,
            in_channels=out_channels + latent_dim,
            out_channels=out_channels,
            block_out_channels=tuple(block_out_channels),
            down_block_types=("DownBlock2D",) * len(block_out_channels),
            up_block_types=("UpBlock2D",) * len(block_out_channels),
            layers_per_block=layers_per_block,
            norm_num_groups=groups,
            add_attention=False,
        )
        self.image_size = image_size
        self.sample_steps = sample_steps
        self.scheduler_config = dict(
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule,
            prediction_type=prediction_type,
            clip_sample=True,
            clip_sample_range=1.0,
            set_alpha_to_one=True,
            timestep_spacing="trailing",
        )
        self._train_scheduler = self._make_scheduler()

    def _make_scheduler(self):
        from diffusers import DDIMScheduler

        return DDIMScheduler(**self.scheduler_config)

    @property
    def last_layer(self) -> nn.Parameter:
        return self.unet.conv_out.weight

    def denoise(self, noisy: Tensor, timesteps: Tensor, latents: Tensor) -> Tensor:
        """UNet output for ``noisy`` (B, C, H, W) at integer ``timesteps`` (B,) given latents (B, D, h, w)."""
        cond = F.interpolate(latents.to(noisy.dtype), size=noisy.shape[-2:], mode="nearest")
        return self.unet(torch.cat([noisy, cond], dim=1), timesteps).sample

    def loss(self, latents: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """DDPM loss (fp32 MSE on the configured prediction) and the implied x0 estimate (B, C, H, W)."""
        sched = self._train_scheduler
        b = target.shape[0]
        noise = torch.randn_like(target, dtype=torch.float32)
        t = torch.randint(0, sched.config.num_train_timesteps, (b,), device=target.device)
        x0 = target.float()
        noisy = sched.add_noise(x0, noise, t)
        pred = self.denoise(noisy, t, latents).float()
        alpha = sched.alphas_cumprod.to(target.device)[t].view(b, 1, 1, 1)
        kind = sched.config.prediction_type
        if kind == "epsilon":
            goal = noise
            x0_hat = (noisy - (1 - alpha).sqrt() * pred) / alpha.sqrt()
        elif kind == "sample":
            goal, x0_hat = x0, pred
        else:  # v_prediction
            goal = sched.get_velocity(x0, noise, t)
            x0_hat = alpha.sqrt() * noisy - (1 - alpha).sqrt() * pred
        return F.mse_loss(pred, goal), x0_hat.clamp(-1, 1)

    @torch.no_grad()
    def sample(
        self,
        latents: Tensor,
        channels: int,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Deterministic DDIM (eta=0): latents (B, D, h, w) -> images (B, channels, H, W) in [-1, 1]."""
        sched = self._make_scheduler()
        sched.set_timesteps(steps or self.sample_steps, device=latents.device)
        shape = (latents.shape[0], channels, self.image_size, self.image_size)
        x = torch.randn(shape, generator=generator, device="cpu").to(latents.device)
        for t in sched.timesteps:
            t_batch = torch.full((shape[0],), int(t), device=latents.device, dtype=torch.long)
            pred = self.denoise(x, t_batch, latents).float()
            x = sched.step(pred, t, x, eta=0.0).prev_sample
        return x.clamp(-1, 1)
