"""The DiVAE tokenizers released with apple/ml-4m (``EPFL-VILAB/4M_tokenizers_{rgb,depth,normal,edge}_*``):
an ml-4m VQ encoder + quantiser and a diffusion decoder, as a fourm tokenizer.

Checkpoints are converted with :mod:`fourm.convert.ml4m_divae`; this module holds the network, the
sampling loop and the files. The encoder and quantiser are those of
:class:`~tokenizers_zoo.image.ml4m_vqvae.Ml4mVQVAE` (identical computation, converted encoder only);
the decoder is ml-4m's patched UNet, run by a diffusers scheduler configured like ml-4m's.

Decoding (what ml-4m's ``DiVAE.decode_tokens`` computes)::

    ids (B, N) -> code vectors (B, D, h, w)
    x_T ~ N(0, 1) (B, C, H, W), drawn on the CPU from the generator
    for t in the scheduler's timesteps:
        x_t -> patches (B, C*p*p, H/p, W/p) ++ nearest-upsampled code vectors -> UNet(., t) -> (B, C*p*p, H/p, W/p)
            -> pixels (B, C, H, W) = model output (noise, x0 or v, by ``prediction_type``)
        x_{t-1} = scheduler.step(output, t, x_t, generator)        (DDPM draws its noise from the generator too)
    -> x_0 (B, C, H, W), the decoder's output as is (ml-4m's range, [-1, 1] for images; not clamped)

* the UNet (ml-4m's guided-diffusion-style ``UNetModel`` under ``PatchedUNetCondCat``): a 3x3 input
  convolution; per level ``num_res_blocks`` residual blocks (GroupNorm(32) computed in fp32, SiLU,
  3x3 convolutions, the timestep embedding added between them, 1x1 skip when the width changes),
  each followed by self-attention at the levels whose downsampling factor is in
  ``attention_resolutions``, and a strided 3x3 convolution between levels; a middle of residual block,
  attention, residual block; the mirrored way up with skip concatenations (``num_res_blocks + 1``
  blocks per level, nearest x2 upsampling + 3x3 convolution between levels); GroupNorm, SiLU, 3x3
  output convolution. Attention: ``num_heads`` heads over the channels, q/k/v laid out head by head
  (ml-4m's "legacy" order), softmax(q k^T / sqrt(d)). Timestep embedding: [cos, sin] of
  ``t * 10000^(-i / half)`` (width ``model_channels``), Linear, SiLU, Linear (width 4x).
* schedulers: ``ddpm`` -> ``diffusers.DDPMScheduler`` (fixed-small variance, "leading" timesteps
  ``(0 .. n-1) * (T // n)`` reversed), ``ddim`` -> ``diffusers.DDIMScheduler`` (eta 0, final alpha 1)
  with ml-4m's timesteps for ``trailing`` / ``leading`` / ``linspace`` (ml-4m's integer step ratio:
  ``trailing`` with a step count that does not divide T gives one step more, as in ml-4m). Betas:
  ``linear``, ``scaled_linear``, ``squaredcos_cap_v2``, ``sigmoid`` (DDPM only) as diffusers computes
  them, rescaled to zero terminal SNR if ``zero_terminal_snr``; ``shifted_cosine:<s>`` sets
  ``alphas_cumprod = sigmoid(clamp(-2 (log tan(pi t / 2) + log s), -15, 15))`` over ``t = linspace(0,
  1, T)`` (a float32 grid, the rest in float64), last one 0. Dynamic thresholding (ratio 0.995, max 1) or clipping of the x0 estimate.

Files: a directory that is an encoder-only :class:`Ml4mVQVAE` directory (``config.json`` +
``model.safetensors``, so that readers of converted ml-4m tokenizers keep encoding with it) plus
``diffusion_decoder/`` (``config.json`` of :class:`Ml4mDiffusionConfig` + ``model.safetensors``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.config import Config, read_json_object
from fourm.utils.weights import load_checked
from tokenizers_zoo.image.ml4m_vqvae import Ml4mVQVAE, Ml4mVQVAEConfig

DECODER_DIR = "diffusion_decoder"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DECODER_FORMAT = "ml4m-divae-decoder"
SCHEDULERS = ("ddpm", "ddim")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")  # or "shifted_cosine:<shift>"
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
SPACINGS = ("trailing", "leading", "linspace")


@dataclass
class Ml4mUNetConfig(Config):
    """ml-4m's ``PatchedUNetCondCat``: a UNet over (C * p * p + cond_channels)-channel patch grids."""

    channels: int = 3  # image channels (in and out)
    cond_channels: int = 32  # latent_dim of the quantiser
    patch_size: int = 4
    model_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 3
    attention_resolutions: tuple[int, ...] = (4, 8)  # downsampling factors (1, 2, 4, ...) with attention
    num_heads: int = 1

    def validate(self) -> None:
        if min(self.channels, self.cond_channels, self.patch_size, self.model_channels, self.num_res_blocks,
               self.num_heads, *self.channel_mult) < 1 or not self.channel_mult:
            raise FourmError(f"UNet sizes must be >= 1, got {self.to_dict()}")
        for mult in self.channel_mult:
            width = mult * self.model_channels
            if width % 32:
                raise FourmError(f"UNet width {width} is not divisible by 32 (GroupNorm groups)")
            if width % self.num_heads:
                raise FourmError(f"UNet width {width} is not divisible by num_heads {self.num_heads}")

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (patch size times the total downsampling)."""
        return self.patch_size * 2 ** (len(self.channel_mult) - 1)


@dataclass
class Ml4mDiffusionConfig(Config):
    """The diffusion decoder of an ml-4m DiVAE: its UNet and the noise schedule it was trained with."""

    format: str = DECODER_FORMAT
    unet: Ml4mUNetConfig = field(default_factory=Ml4mUNetConfig)
    sample_size: int = 224  # ml-4m's default decoding size (image_size_dec or image_size); informative
    scheduler: Literal["ddpm", "ddim"] = "ddpm"
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "v_prediction"
    clip_sample: bool = False
    thresholding: bool = True
    zero_terminal_snr: bool = True
    default_steps: int = 50  # denoising steps when decode() is given none (ml-4m's demos use 50)

    def validate(self) -> None:
        if self.format != DECODER_FORMAT:
            raise FourmError(f"not an ml-4m DiVAE decoder config: format is {self.format!r}, expected {DECODER_FORMAT!r}")
        self.unet.validate()
        if min(self.sample_size, self.num_train_timesteps, self.default_steps) < 1:
            raise FourmError("sample_size, num_train_timesteps and default_steps must be >= 1")
        check_beta_schedule(self.beta_schedule, self.scheduler)


def check_beta_schedule(name: str, scheduler: str) -> None:
    if name.startswith("shifted_cosine:"):
        try:
            shift = float(name.split(":", 1)[1])
        except ValueError:
            shift = -1.0
        if not shift > 0 or not math.isfinite(shift):
            raise FourmError(f"beta_schedule {name!r}: the shift must be a positive number")
        return
    if name not in BETA_SCHEDULES:
        raise FourmError(f"beta_schedule {name!r} is not supported (known: {', '.join(BETA_SCHEDULES)}, shifted_cosine:<shift>)")
    if name == "sigmoid" and scheduler != "ddpm":
        raise FourmError("beta_schedule 'sigmoid' exists only with the ddpm scheduler in ml-4m")


# ------------------------------------------------------------------------------------ schedules
def shifted_cosine_alphas_cumprod(num_train_timesteps: int, shift: float) -> Tensor:
    """Cosine schedule shifted by ``log(shift)`` in log-SNR, as ml-4m's ``shifted_cosine:<shift>``."""
    t = torch.linspace(0, 1, num_train_timesteps).double()  # a float32 grid, as ml-4m's
    log_snr = -2.0 * (torch.log(torch.tan(math.pi * t / 2)) + math.log(shift))
    alphas = torch.sigmoid(log_snr.clamp(-15, 15).float())
    alphas[-1] = 0.0
    return alphas


def make_scheduler(cfg: Ml4mDiffusionConfig, kind: str | None = None):
    """A diffusers DDPMScheduler / DDIMScheduler with ml-4m's settings for ``cfg`` (``kind`` overrides
    ``cfg.scheduler``)."""
    from diffusers import DDIMScheduler, DDPMScheduler  # a heavy import, only when decoding

    kind = kind or cfg.scheduler
    if kind not in SCHEDULERS:
        raise FourmError(f"unknown scheduler {kind!r} (known: {', '.join(SCHEDULERS)})")
    check_beta_schedule(cfg.beta_schedule, kind)
    shifted = cfg.beta_schedule.startswith("shifted_cosine:")
    common = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule="linear" if shifted else cfg.beta_schedule,
                  prediction_type=cfg.prediction_type, clip_sample=cfg.clip_sample, thresholding=cfg.thresholding,
                  rescale_betas_zero_snr=cfg.zero_terminal_snr and not shifted)
    if kind == "ddpm":
        sched = DDPMScheduler(**common, variance_type="fixed_small", timestep_spacing="leading")
    else:
        sched = DDIMScheduler(**common, set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing")
    if shifted:
        sched.alphas_cumprod = shifted_cosine_alphas_cumprod(cfg.num_train_timesteps, float(cfg.beta_schedule.split(":")[1]))
    return sched


def ml4m_timesteps(kind: str, num_train_timesteps: int, steps: int, spacing: str = "trailing") -> Tensor:
    """The timesteps ml-4m's scheduler ``kind`` visits for ``steps`` steps (DDPM: always "leading")."""
    if not 1 <= steps <= num_train_timesteps:
        raise FourmError(f"steps must be in [1, {num_train_timesteps}], got {steps}")
    if spacing not in SPACINGS:
        raise FourmError(f"unknown timestep spacing {spacing!r} (known: {', '.join(SPACINGS)})")
    ratio = num_train_timesteps // steps
    if kind == "ddpm" or spacing == "leading":
        ts = (np.arange(0, steps) * ratio).round()[::-1].copy()
    elif spacing == "trailing":
        ts = np.arange(num_train_timesteps, 0, -ratio).round() - 1
    else:
        ts = np.linspace(num_train_timesteps, 1, steps).round() - 1
    return torch.from_numpy(ts.astype(np.int64))


# ------------------------------------------------------------------------------------ the UNet
class _GroupNorm(nn.GroupNorm):
    """GroupNorm(32) computed in fp32, returned in the input's dtype."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).to(x.dtype)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.norm1 = _GroupNorm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = _GroupNorm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb)).to(h.dtype)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class _Attention(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = _GroupNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, T, C)
        q, k, v = self.qkv(tokens).reshape(b, h * w, self.heads, 3, c // self.heads).permute(3, 0, 2, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.proj(out).transpose(1, 2).reshape(b, c, h, w)


class _Step(nn.Module):
    """One entry of the UNet's way down or up: a residual block (+ attention), or a resampling."""

    def __init__(self, res: _ResBlock | None = None, attn: _Attention | None = None,
                 down: int | None = None, up: int | None = None):
        super().__init__()
        self.res, self.attn = res, attn
        self.down = nn.Conv2d(down, down, 3, stride=2, padding=1) if down else None
        self.up = nn.Conv2d(up, up, 3, padding=1) if up else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.res is not None:
            x = self.res(x, emb)
        if self.attn is not None:
            x = self.attn(x)
        if self.down is not None:
            x = self.down(x)
        if self.up is not None:
            x = self.up(F.interpolate(x, scale_factor=2, mode="nearest"))
        return x


def unet_layout(cfg: Ml4mUNetConfig) -> tuple[list[dict], list[dict]]:
    """The UNet's way down (after the input convolution) and up, one dict per step: ``res`` (cin,
    cout) or None, ``attn`` (channels) or None, ``down`` / ``up`` (channels) or None. The same walk as
    ml-4m's ``UNetModel.__init__`` (the converter maps its ``input_blocks`` / ``output_blocks`` with it)."""
    mc = cfg.model_channels
    ch = cfg.channel_mult[0] * mc
    skips, ds = [ch], 1
    down: list[dict] = []
    for level, mult in enumerate(cfg.channel_mult):
        for _ in range(cfg.num_res_blocks):
            out = mult * mc
            down.append({"res": (ch, out), "attn": out if ds in cfg.attention_resolutions else None})
            ch = out
            skips.append(ch)
        if level != len(cfg.channel_mult) - 1:
            down.append({"down": ch})
            skips.append(ch)
            ds *= 2
    up: list[dict] = []
    for level, mult in reversed(list(enumerate(cfg.channel_mult))):
        for i in range(cfg.num_res_blocks + 1):
            out = mult * mc
            step = {"res": (ch + skips.pop(), out), "attn": out if ds in cfg.attention_resolutions else None}
            ch = out
            if level and i == cfg.num_res_blocks:
                step["up"] = ch
                ds //= 2
            up.append(step)
    return down, up


class Ml4mUNet(nn.Module):
    """ml-4m's patched, concatenation-conditioned UNet: (noisy image, timestep, code vectors) -> output."""

    def __init__(self, cfg: Ml4mUNetConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        mc, p = cfg.model_channels, cfg.patch_size
        emb = 4 * mc
        self.time_fc1 = nn.Linear(mc, emb)
        self.time_fc2 = nn.Linear(emb, emb)
        self.conv_in = nn.Conv2d(cfg.channels * p * p + cfg.cond_channels, cfg.channel_mult[0] * mc, 3, padding=1)

        def step(s: dict) -> _Step:
            res = _ResBlock(*s["res"], emb) if s.get("res") else None
            attn = _Attention(s["attn"], cfg.num_heads) if s.get("attn") else None
            return _Step(res, attn, s.get("down"), s.get("up"))

        down, up = unet_layout(cfg)
        self.down = nn.ModuleList(step(s) for s in down)
        width = cfg.channel_mult[-1] * mc
        self.mid1 = _ResBlock(width, width, emb)
        self.mid_attn = _Attention(width, cfg.num_heads)
        self.mid2 = _ResBlock(width, width, emb)
        self.up = nn.ModuleList(step(s) for s in up)
        self.norm_out = _GroupNorm(cfg.channel_mult[0] * mc)
        self.conv_out = nn.Conv2d(cfg.channel_mult[0] * mc, cfg.channels * p * p, 3, padding=1)

    def time_embedding(self, t: Tensor) -> Tensor:  # (B,) -> (B, 4 * model_channels)
        half = self.cfg.model_channels // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
        args = t[:, None].float() * freqs[None]
        sin = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.cfg.model_channels % 2:
            sin = torch.cat([sin, sin.new_zeros(sin.shape[0], 1)], dim=-1)
        return self.time_fc2(F.silu(self.time_fc1(sin.to(self.time_fc1.weight.dtype))))

    def forward(self, sample: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """``sample`` (B, C, H, W), ``t`` (B,) integer timesteps, ``cond`` code vectors (B, D, h, w)."""
        b, c, hh, ww = sample.shape
        p = self.cfg.patch_size
        nh, nw = hh // p, ww // p
        x = sample.reshape(b, c, nh, p, nw, p).permute(0, 1, 3, 5, 2, 4).reshape(b, c * p * p, nh, nw)
        cond = F.interpolate(cond.to(x.dtype), size=(nh, nw), mode="nearest")
        emb = self.time_embedding(t)
        h = self.conv_in(torch.cat([x, cond], dim=1))
        skips = [h]
        for s in self.down:
            h = s(h, emb)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for s in self.up:
            h = s(torch.cat([h, skips.pop()], dim=1), emb)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out.reshape(b, c, p, p, nh, nw).permute(0, 1, 4, 2, 5, 3).reshape(b, c, hh, ww)


# ------------------------------------------------------------------------------------ the tokenizer
class Ml4mDiVAE(nn.Module):
    """An ml-4m DiVAE: ``encode(x) -> (B, N)`` ids (as :class:`Ml4mVQVAE`), ``decode(ids, steps,
    seed / generator) -> (B, C, H, W)`` images by diffusion (see the module docstring)."""

    def __init__(self, vq: Ml4mVQVAEConfig, decoder: Ml4mDiffusionConfig):
        super().__init__()
        if vq.decoder is not None:
            raise FourmError("a DiVAE's VQ part is encoder only (its decoder is the diffusion decoder)")
        if vq.input == "vector":
            raise FourmError("a DiVAE decodes images: vector inputs are not supported")
        decoder.validate()
        if decoder.unet.cond_channels != vq.latent_dim:
            raise FourmError(f"the UNet is conditioned on {decoder.unet.cond_channels} channels, "
                             f"but the quantiser's codes have {vq.latent_dim}")
        self.vq = Ml4mVQVAE(vq)
        self.unet = Ml4mUNet(decoder.unet)
        self.decoder_cfg = decoder
        self.eval()

    # ---- sizes (those of the encoder) ---------------------------------------------------------------
    @property
    def cfg(self) -> Ml4mVQVAEConfig:
        return self.vq.cfg

    @property
    def vocab_size(self) -> int:
        return self.vq.vocab_size

    @property
    def num_tokens(self) -> int:
        return self.vq.num_tokens

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.vq.grid_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def __repr__(self) -> str:
        d = self.decoder_cfg
        return (f"Ml4mDiVAE(domain={self.cfg.domain!r}, vocab={self.vocab_size}, tokens={self.num_tokens}, "
                f"unet={d.unet.model_channels}x{list(d.unet.channel_mult)}, scheduler={d.scheduler}, "
                f"prediction={d.prediction_type})")

    # ---- encoder ----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) (ml-4m's input convention, see Ml4mVQVAE) -> token ids (B, N)."""
        return self.vq.encode(x)

    def code_vectors(self, ids: Tensor) -> Tensor:
        """Token ids (B, N) -> their code vectors (B, latent_dim, h, w) (checked)."""
        return self.vq.code_vectors(ids)

    # ---- decoder ----------------------------------------------------------------------------------
    def make_scheduler(self, kind: str | None = None):
        """The diffusers scheduler ml-4m decodes with (``kind``: ``ddpm`` / ``ddim``, default the config's)."""
        return make_scheduler(self.decoder_cfg, kind)

    def _image_size(self, image_size: int | tuple[int, int] | None, grid: tuple[int, int]) -> tuple[int, int]:
        if image_size is None:
            size = (grid[0] * self.cfg.patch_size, grid[1] * self.cfg.patch_size)
        elif isinstance(image_size, int):
            size = (image_size, image_size)
        else:
            size = tuple(int(s) for s in image_size)
        m = self.unet.cfg.multiple
        if len(size) != 2 or min(size) < 1 or size[0] % m or size[1] % m:
            raise FourmError(f"image size {size} must be positive multiples of {m} (UNet patch size "
                             f"{self.unet.cfg.patch_size} x {2 ** (len(self.unet.cfg.channel_mult) - 1)} downsampling)")
        return size

    @torch.no_grad()
    def decode(
        self,
        ids: Tensor,
        steps: int | None = None,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        image_size: int | tuple[int, int] | None = None,
        scheduler: str | None = None,
        timestep_spacing: str = "trailing",
        noise: Tensor | None = None,
    ) -> Tensor:
        """Token ids (B, N) -> decoded images (B, C, H, W) (float32, not clamped).

        ``steps``: denoising steps (default ``decoder_cfg.default_steps``); ``generator`` (a CPU
        torch.Generator) or else ``seed`` (None: torch's global generator) draws the starting noise
        and, with DDPM, the noise of every step: the same generator state gives ml-4m's
        ``decode_tokens(..., generator=)`` result. ``image_size``: output side(s) (default: token grid
        x encoder patch size); ``scheduler``: ``ddpm`` / ``ddim`` instead of the config's;
        ``timestep_spacing`` (DDIM): ``trailing`` (ml-4m's default), ``leading`` or ``linspace``;
        ``noise``: the starting noise itself (B, C, H, W) instead of drawing it."""
        cond = self.code_vectors(ids)
        size = self._image_size(image_size, cond.shape[-2:])
        d = self.decoder_cfg
        steps = d.default_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise FourmError(f"steps must be an integer, got {steps!r}")
        sched = self.make_scheduler(scheduler)
        timesteps = ml4m_timesteps(scheduler or d.scheduler, d.num_train_timesteps, steps, timestep_spacing)
        sched.set_timesteps(steps)  # the step sizes (T // steps), then ml-4m's own timesteps
        sched.timesteps = timesteps
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        shape = (cond.shape[0], d.unet.channels, *size)
        if noise is None:
            x = torch.randn(shape, generator=generator)
        elif tuple(noise.shape) != shape:
            raise FourmError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        else:
            x = noise.float()
        device, dtype = self.device, next(self.unet.parameters()).dtype
        x, cond = x.to(device), cond.to(device)
        for t in sched.timesteps.tolist():
            t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
            out = self.unet(x.to(dtype), t_batch, cond.to(dtype)).float()
            x = sched.step(out, t, x, generator=generator).prev_sample
        return x

    # ---- files ------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """``path``: the encoder as an Ml4mVQVAE directory + ``diffusion_decoder/`` (replaced atomically)."""
        with atomic_dir(path) as tmp:
            for cfg, module, where in ((self.vq.cfg, self.vq, tmp), (self.decoder_cfg, self.unet, tmp / DECODER_DIR)):
                where.mkdir(exist_ok=True)
                cfg.save_json(where / CONFIG_NAME)
                state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
                save_file(state, str(where / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> Ml4mDiVAE:
        """Load a directory written by :meth:`save_pretrained`; FourmError for missing, corrupt or
        mismatched files."""
        path = Path(path)
        dec_dir = path / DECODER_DIR
        if not (dec_dir / CONFIG_NAME).is_file() or not (dec_dir / WEIGHTS_NAME).is_file():
            raise FourmError(f"{path} is not a converted ml-4m DiVAE: {DECODER_DIR}/{CONFIG_NAME} + {WEIGHTS_NAME} "
                             "missing (convert DiVAE checkpoints with fourm-convert ml4m-tokenizer)")
        vq = Ml4mVQVAE.from_pretrained(path)
        data = read_json_object(dec_dir / CONFIG_NAME, "DiVAE decoder config")
        if data.get("format") != DECODER_FORMAT:
            raise FourmError(f"{dec_dir / CONFIG_NAME}: format is {data.get('format')!r}, expected {DECODER_FORMAT!r}")
        try:
            dec_cfg = Ml4mDiffusionConfig.from_dict(data)
            model = cls(vq.cfg, dec_cfg)
        except FourmError as e:
            raise FourmError(f"{dec_dir / CONFIG_NAME}: {e}") from None
        model.vq.load_state_dict(vq.state_dict())
        load_checked(model.unet, dec_dir / WEIGHTS_NAME, f"DiVAE decoder weights {dec_dir / WEIGHTS_NAME} do not "
                     "match its config", label="corrupt DiVAE decoder weights")
        return model.to(device).eval()


def is_divae_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory written by :meth:`Ml4mDiVAE.save_pretrained`."""
    return (Path(path) / DECODER_DIR / CONFIG_NAME).is_file()
