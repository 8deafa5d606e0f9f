"""ImageTokenizer: encoder -> quantiser -> decoder for one image modality (VQ-VAE / dVAE / VQGAN / FSQ / 1D).

Model convention (what ``encode`` takes and ``decode`` returns; ``preprocess`` / ``postprocess``
convert from / to ``fourm.core.schema`` raw arrays):

===========  =========================================  =============================================
modality     input tensor                                ``decode`` output
===========  =========================================  =============================================
rgb          float (B, 3, H, W) in [-1, 1]               same
depth        float (B, 1, H, W) in [-1, 1] (= 2d - 1)    same
normals      float (B, 3, H, W) in [-1, 1]               same
semseg       long (B, H, W) class ids                    long (B, H, W), argmax of the class logits
edges        float (B, 1, H, W) in {0, 1}                float (B, 1, H, W) in {0, 1} (logit > 0)
===========  =========================================  =============================================

Tokens are ``(B, N)`` long with ``N = num_tokens`` (row-major flattening of ``grid_size``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.core.schema import check_image
from fourm.errors import FourmError
from fourm.utils.weights import load_checked, read_pretrained_dir, save_pretrained_dir
from tokenizers_zoo.image.config import ImageTokenizerConfig
from tokenizers_zoo.image.conv import ConvDecoder, ConvEncoder
from tokenizers_zoo.image.diffusion_decoder import DiffusionDecoder
from tokenizers_zoo.image.discriminator import PatchDiscriminator
from tokenizers_zoo.image.losses import (
    PerceptualLoss,
    adaptive_weight,
    disc_factor,
    hinge_d_loss,
    hinge_g_loss,
    reconstruction_loss,
)
from tokenizers_zoo.image.titok import TiTokDecoder, TiTokEncoder
from tokenizers_zoo.image.vit import ViTDecoder, ViTEncoder
from tokenizers_zoo.image.vqvae2 import VQVAE2Bottleneck
from tokenizers_zoo.quantizers import QuantizerOutput, build_quantizer

# architectures built by a subclass of ImageTokenizer (``register_architecture``), e.g. "dynamic"
_SUBCLASSES: dict[str, type[ImageTokenizer]] = {}


def register_architecture(name: str):
    """Class decorator: configs with ``architecture: name`` are built by the decorated subclass."""

    def decorate(cls: type[ImageTokenizer]) -> type[ImageTokenizer]:
        _SUBCLASSES[name] = cls
        return cls

    return decorate


def build_image_tokenizer(cfg: ImageTokenizerConfig) -> ImageTokenizer:
    """A fresh tokenizer of the class that builds ``cfg.architecture`` (ImageTokenizer or a subclass)."""
    return _SUBCLASSES.get(cfg.architecture, ImageTokenizer)(cfg)


def batch_to_model(key: str, arrays, size: int, num_classes: int | None = None) -> Tensor:
    """A batch of raw schema arrays of modality ``key`` (checked: ``size`` x ``size``; semseg ids below
    ``num_classes``) -> the model-convention tensor (module docstring): rgb / normals (B, 3, H, W) and
    depth (B, 1, H, W) in [-1, 1], semseg (B, H, W) long, edges (B, 1, H, W) in {0, 1}."""
    batch = [np.asarray(a) for a in arrays]
    for a in batch:
        check_image(key, a, size)
    x = torch.from_numpy(np.stack(batch))
    if key in ("rgb", "normals"):
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W)
    if key == "depth":
        return x.float().unsqueeze(1) * 2.0 - 1.0  # (B, 1, H, W)
    if key == "semseg":
        x = x.long()
        if int(x.max()) >= num_classes:
            raise FourmError(f"semseg class id {int(x.max())} out of range (expected < {num_classes})")
        return x  # (B, H, W)
    return (x > 0).float().unsqueeze(1)  # edges (B, 1, H, W)


def _build_networks(cfg: ImageTokenizerConfig, dim: int) -> tuple[nn.Module, nn.Module | None]:
    """Encoder and (deterministic) decoder for ``cfg.architecture`` with ``dim`` latent channels."""
    c_in, c_out = cfg.channels_in, cfg.channels_out
    if cfg.architecture in ("conv", "vqvae2"):
        kw = dict(
            width=cfg.width,
            channel_mult=cfg.channel_mult,
            num_res_blocks=cfg.num_res_blocks,
            downsample=cfg.downsample,
        )
        encoder = ConvEncoder(c_in, dim, **kw)  # vqvae2: the bottom encoder
        kw["width"], kw["num_res_blocks"] = cfg.decoder_shape
        # vqvae2: the decoder reads [bottom codes, upsampled top codes], 2 * dim channels (vqvae2.py)
        decoder = ConvDecoder(c_out, 2 * dim if cfg.architecture == "vqvae2" else dim, **kw)
    elif cfg.architecture == "vit":
        kw = dict(
            image_size=cfg.image_size,
            patch=cfg.downsample,
            width=cfg.width,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
        )
        encoder, decoder = ViTEncoder(c_in, dim, **kw), ViTDecoder(c_out, dim, **kw)
    else:
        kw = dict(
            image_size=cfg.image_size,
            patch=cfg.downsample,
            num_latent_tokens=cfg.num_latent_tokens,
            width=cfg.width,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
        )
        encoder, decoder = TiTokEncoder(c_in, dim, **kw), TiTokDecoder(c_out, dim, **kw)
    return encoder, (decoder if cfg.decoder == "deterministic" else None)


class ImageTokenizer(nn.Module):
    """Discrete tokenizer for one image modality; see the module docstring for tensor conventions.

    ``encode(images) -> (B, N)`` tokens, ``decode(tokens) -> images``, ``forward(images) ->
    (decoder output, QuantizerOutput)`` for training, ``loss(batch, step) -> (loss, logs)``.
    """

    def __init__(self, cfg: ImageTokenizerConfig):
        super().__init__()
        cfg.validate()
        if type(self) is ImageTokenizer and cfg.architecture in _SUBCLASSES:
            raise FourmError(f"architecture '{cfg.architecture}' is built by {_SUBCLASSES[cfg.architecture].__name__}"
                             " (use build_image_tokenizer(cfg))")  # fmt: skip
        self.cfg = cfg
        self.modality = cfg.modality
        if cfg.architecture == "vqvae2":  # top + bottom codebooks and the top encoder / decoder
            side, top_width = cfg.image_size // cfg.downsample, cfg.width * cfg.channel_mult[-1]
            self.quantizer = VQVAE2Bottleneck(cfg.quantizer, (side, side), cfg.top_downsample, top_width)
        else:
            self.quantizer = build_quantizer(cfg.quantizer)
        self.encoder, self.decoder = _build_networks(cfg, self.quantizer.dim)
        self.diffusion: DiffusionDecoder | None = None
        if cfg.decoder == "diffusion":
            d = cfg.diffusion
            self.diffusion = DiffusionDecoder(
                cfg.channels_out,
                self.quantizer.dim,
                cfg.image_size,
                d.block_out_channels,
                d.layers_per_block,
                d.num_train_timesteps,
                d.sample_steps,
                d.prediction_type,
                d.beta_schedule,
            )
        self.aux_head: ConvDecoder | None = None  # training-only head of cfg.loss.aux (AuxTargetConfig)
        aux = cfg.loss.aux
        if aux.modality is not None:
            aux_out = aux.num_classes if aux.modality == "semseg" else 1
            self.aux_head = ConvDecoder(aux_out, self.quantizer.dim, aux.width, cfg.channel_mult, 1, cfg.downsample)
        self.discriminator = None
        if cfg.gan.enabled:
            self.discriminator = PatchDiscriminator(cfg.channels_out, cfg.gan.disc_width, cfg.gan.disc_layers)
        # the perceptual network is built on first use and kept out of the module tree (frozen, not saved)
        self._perceptual: dict[str, PerceptualLoss] = {}
        self._auto_step = 0
        self.encoder_frozen = False  # freeze_encoder(): only the decoder side trains

    def freeze_encoder(self) -> None:
        """Freeze the encoder and quantiser (no gradients, always in eval mode, so no codebook
        updates or restarts): the tokens stay those of the weights loaded, only the decoder side
        (decoder, diffusion decoder, discriminator) trains."""
        self.encoder_frozen = True
        for module in (self.encoder, self.quantizer):
            module.requires_grad_(False)
        self.train(self.training)

    def noisy_indices(
        self, indices: Tensor, rate: float, generator: torch.Generator | None = None, ground: Tensor | None = None
    ) -> Tensor:
        """``indices`` (B, *grid) with each one swapped, with probability ``rate``, for a uniformly
        drawn code that the lookup can choose (disabled codes excluded). With ``ground`` (B, *grid)
        bool, only ground positions are swapped, each for the code of a ground position of the batch."""
        swap = torch.rand(indices.shape, generator=generator, device=indices.device) < rate
        if ground is not None:
            allowed = indices[ground]
            swap &= ground
            if allowed.numel() == 0:
                return indices
        else:
            allowed = torch.arange(self.codebook_size, device=indices.device)
            disabled = getattr(self.quantizer, "disabled", None)
            if disabled is not None:
                allowed = allowed[~disabled.to(indices.device)]
        draw = torch.randint(len(allowed), indices.shape, generator=generator, device=indices.device)
        return torch.where(swap, allowed[draw], indices)

    def ground_patches(self, classes: Tensor) -> Tensor:
        """(B, H, W) class map -> (B, H / f, W / f) bool: patches of the token grid holding class 0 only."""
        f = self.cfg.downsample
        b, h, w = classes.shape
        return (classes == 0).view(b, h // f, f, w // f, f).all(dim=4).all(dim=2)

    def train(self, mode: bool = True) -> ImageTokenizer:
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
            self.quantizer.eval()
        return self

    # ---- sizes -----------------------------------------------------------------------------------

    @property
    def grid_size(self) -> tuple[int, ...]:
        """Token layout: (h, w) for conv/vit, (K,) for the 1D titok tokenizer, (N_top + N_bottom,) for
        vqvae2 (the top grid row-major, then the bottom grid; vqvae2.split_levels)."""
        if self.cfg.architecture == "titok":
            return (self.cfg.num_latent_tokens,)
        if self.cfg.architecture == "vqvae2":
            return (self.quantizer.num_tokens,)
        side = self.cfg.image_size // self.cfg.downsample
        return (side, side)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid_size)

    @property
    def vocab_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def codebook_size(self) -> int:
        """Codes of the quantiser (for a grid of codes, the vocabulary)."""
        return self.quantizer.codebook_size

    def token_codes(self, tokens: Tensor) -> Tensor:
        """The codebook indices among ``tokens`` (B, L); for a grid of codes, all of them."""
        return tokens

    def token_counts(self, tokens: Tensor) -> Tensor:
        """Image tokens per row of ``tokens`` (B, L) -> (B,) long; a fixed grid: ``num_tokens``."""
        return torch.full((tokens.shape[0],), self.num_tokens, dtype=torch.long)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def last_layer(self) -> nn.Parameter:
        """The decoder's final weight (for the VQGAN adaptive weight)."""
        return (self.decoder or self.diffusion).last_layer

    # ---- raw arrays <-> model tensors ----------------------------------------------------------

    def preprocess(self, arrays: np.ndarray | Sequence[np.ndarray]) -> Tensor:
        """Raw schema array(s) -> model tensor; one image (H, W[, C]) -> unbatched, list/stack -> batched."""
        key, size = self.modality, self.cfg.image_size
        single_ndim = 3 if key in ("rgb", "normals") else 2
        if isinstance(arrays, np.ndarray) and arrays.ndim == single_ndim:
            return self.preprocess([arrays])[0]
        if isinstance(arrays, np.ndarray) and arrays.ndim != single_ndim + 1:
            check_image(key, arrays, size)  # raises with the expected layout
        return batch_to_model(key, arrays, size, self.cfg.num_classes)

    def postprocess(self, images: Tensor) -> np.ndarray:
        """Model tensor (batched or not) -> raw schema array(s) (uint8 / float32 as in the schema)."""
        x = images.detach().float().cpu()
        key = self.modality
        batched = x.dim() == (3 if key == "semseg" else 4)
        if not batched:
            x = x.unsqueeze(0)
        if key in ("rgb", "normals"):
            out = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        elif key == "depth":
            out = ((x[:, 0].clamp(-1, 1) + 1.0) / 2.0).numpy().astype(np.float32)
        elif key == "semseg":
            out = x.round().clamp(0, 255).to(torch.uint8).numpy()
        else:
            out = (x[:, 0] > 0.5).to(torch.uint8).numpy()
        return out if batched else out[0]

    def aux_targets(self, arrays: np.ndarray) -> Tensor:
        """Raw arrays of the auxiliary target (``cfg.loss.aux.modality``) -> its loss's targets: semseg
        (B, H, W) long class ids, edges (B, 1, H, W) float in {0, 1}; FourmError on a wrong layout."""
        aux = self.cfg.loss.aux
        if aux.modality is None:
            raise FourmError("this tokenizer has no auxiliary target (loss.aux.modality is not set)")
        return batch_to_model(aux.modality, arrays, self.cfg.image_size, aux.num_classes)

    def check_images(self, images: Tensor) -> None:
        """FourmError unless ``images`` is a batch in this tokenizer's model convention and size."""
        size, key = self.cfg.image_size, self.modality
        if key == "semseg":
            ok = images.dim() == 3 and not images.dtype.is_floating_point
            want = f"a long tensor (B, {size}, {size}) of class ids"
        else:
            c = self.cfg.channels_in
            ok = images.dim() == 4 and images.shape[1] == c
            want = f"a float tensor (B, {c}, {size}, {size})"
        if not ok or tuple(images.shape[-2:]) != (size, size):
            raise FourmError(
                f"{key} tokenizer expects {want} (image size {size}x{size}), got {tuple(images.shape)}"
            )

    def network_input(self, images: Tensor) -> Tensor:
        """Model-convention images -> encoder input (semseg one-hot, edges to [-1, 1])."""
        if self.modality == "semseg":
            return F.one_hot(images.long(), self.cfg.num_classes).permute(0, 3, 1, 2).float()
        if self.modality == "edges":
            return images.float() * 2.0 - 1.0
        return images.float()

    def output_to_images(self, output: Tensor) -> Tensor:
        """Decoder output (logits for semseg / edges) -> model-convention images."""
        if self.modality == "semseg":
            return output.argmax(dim=1)
        if self.modality == "edges":
            return (output > 0).float()
        return output.float().clamp(-1, 1)

    # ---- tokenizer API ---------------------------------------------------------------------------

    def quantize(self, images: Tensor) -> QuantizerOutput:
        """Encode and quantise: images -> QuantizerOutput with z_q (B, D, *grid) and indices (B, *grid)."""
        self.check_images(images)
        return self.quantizer(self.encoder(self.network_input(images)))

    def decode_latents(self, z_q: Tensor) -> Tensor:
        """Quantised latents (B, D, *grid) -> decoder output (semseg / edges: logits); not for diffusion."""
        if self.decoder is None:
            raise FourmError("decode_latents needs a deterministic decoder; this tokenizer uses diffusion")
        return self.decoder(z_q)

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """Images (model convention) -> tokens (B, N) long. Never updates codebook statistics."""
        was_training = self.quantizer.training
        self.quantizer.eval()
        try:
            return self.quantize(images).indices.reshape(images.shape[0], -1).long()
        finally:
            self.quantizer.train(was_training)

    @torch.no_grad()
    def decode(
        self, tokens: Tensor, steps: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Tokens (B, N) -> images (model convention). ``steps``/``generator``: diffusion decoder only."""
        if tokens.dim() != 2 or tokens.shape[1] != self.num_tokens:
            raise FourmError(f"expected tokens of shape (B, {self.num_tokens}), got {tuple(tokens.shape)}")
        indices = tokens.reshape(tokens.shape[0], *self.grid_size)
        z_q = self.quantizer.indices_to_latents(indices)
        if self.diffusion is not None:
            if generator is None:
                generator = torch.Generator().manual_seed(self.cfg.diffusion.seed)
            return self.diffusion.sample(z_q, self.cfg.channels_out, steps, generator)
        return self.output_to_images(self.decoder(z_q))

    def forward(self, images: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Training forward: (decoder output (B, C_out, H, W), quantiser output).

        The decoder output is logits for semseg/edges; with the diffusion decoder it is the one-step
        x0 estimate from a randomly noised input.
        """
        q = self.quantize(images)
        if self.diffusion is not None:
            _, x0_hat = self.diffusion.loss(q.z_q, images)
            return x0_hat, q
        return self.decoder(q.z_q), q

    # ---- losses ----------------------------------------------------------------------------------

    def _perceptual_loss(self) -> PerceptualLoss:
        if "net" not in self._perceptual:
            self._perceptual["net"] = PerceptualLoss(self.cfg.loss.perceptual_weights).to(self.device)
        return self._perceptual["net"]

    def check_training_setup(self) -> None:
        """Build training-only pieces now (e.g. load perceptual weights) so bad paths fail early."""
        if self.cfg.loss.perceptual_weight > 0:
            self._perceptual_loss()

    def _disc_view(self, x: Tensor, is_output: bool) -> Tensor:
        """What the discriminator sees: continuous images as is, semseg/edges as class probabilities."""
        if self.modality == "semseg":
            return x.float().softmax(1) if is_output else self.network_input(x)
        if self.modality == "edges":
            return x.float().sigmoid() if is_output else x.float()
        return x

    def loss(
        self, batch: Tensor | dict[str, Any], step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Total training loss (fp32 scalar) and detached logs for a batch of model-convention images.

        ``batch`` is a tensor or a dict holding one under this modality's key. ``step`` (for the GAN's
        delayed start) defaults to an internal counter advanced by every training-mode call. With the
        GAN on, the total includes the discriminator's hinge loss; the discriminator is frozen while
        computing the generator term, so one backward/optimizer step trains both correctly.
        """
        images = batch[self.modality] if isinstance(batch, dict) else batch
        aux = self.cfg.loss.aux
        aux_target = batch.get(aux.modality) if isinstance(batch, dict) and aux.modality else None
        if self.aux_head is not None and aux_target is None and self.training and not self.encoder_frozen:
            raise FourmError(f"this tokenizer trains with an auxiliary '{aux.modality}' target: pass a dict "
                             f"batch holding '{self.modality}' and '{aux.modality}'")  # fmt: skip
        if step is None:
            step = self._auto_step
            if self.training:
                self._auto_step += 1
        cfg = self.cfg
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            q = self.quantize(images)
        logs: dict[str, float] = {}
        z_q = q.z_q
        if self.encoder_frozen and self.training and cfg.train.token_noise > 0:
            key = cfg.train.token_noise_ground
            if key is not None and not (isinstance(batch, dict) and key in batch):
                raise FourmError(f"train.token_noise_ground needs the '{key}' class map in the batch")
            ground = None if key is None else self.ground_patches(batch[key])
            z_q = self.quantizer.indices_to_latents(self.noisy_indices(q.indices, cfg.train.token_noise, ground=ground))
        if self.diffusion is not None:
            rec_loss, output = self.diffusion.loss(z_q, images)
        else:
            output = self.decoder(z_q)
            rec_loss = reconstruction_loss(
                self.modality, output, images, cfg.loss.recon, cfg.loss.edge_pos_weight, cfg.loss.detail_weight
            )
        nll = cfg.loss.recon_weight * rec_loss
        if cfg.loss.perceptual_weight > 0:
            p_loss = self._perceptual_loss()(output.float(), images.float())
            nll = nll + cfg.loss.perceptual_weight * p_loss
            logs["perceptual"] = float(p_loss.detach())
        total = nll if self.encoder_frozen else nll + cfg.loss.quantizer_weight * q.loss.float()
        if self.aux_head is not None and aux_target is not None and not self.encoder_frozen:
            aux_loss = reconstruction_loss(aux.modality, self.aux_head(q.z_q), aux_target)
            total = total + aux.weight * aux_loss
            logs["aux"] = float(aux_loss.detach())
        logs["recon"] = float(rec_loss.detach())
        logs["quantizer"] = float(q.loss.detach())
        for name, value in q.metrics.items():
            logs[f"q_{name}"] = float(value)

        factor = disc_factor(step, cfg.gan.disc_start) if self.discriminator is not None else 0.0
        if factor > 0:
            disc = self.discriminator
            fake = self._disc_view(output, is_output=True)
            disc.requires_grad_(False)  # generator term must not train the discriminator
            g_loss = hinge_g_loss(disc(fake))
            disc.requires_grad_(True)
            weight = torch.tensor(cfg.gan.disc_weight, device=total.device)
            if cfg.gan.adaptive_weight and torch.is_grad_enabled() and self.training:
                weight = weight * adaptive_weight(nll, g_loss, self.last_layer, cfg.gan.max_adaptive_weight)
            total = total + factor * weight * g_loss
            real = self._disc_view(images, is_output=False)
            d_loss = hinge_d_loss(disc(real.detach()), disc(fake.detach()))
            total = total + factor * cfg.gan.disc_loss_weight * d_loss
            logs.update(g_loss=float(g_loss.detach()), d_loss=float(d_loss.detach()), g_weight=float(weight))
        logs["loss"] = float(total.detach())
        return total, logs

    # ---- persistence -----------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` + ``model.safetensors`` into directory ``path`` atomically."""
        save_pretrained_dir(self, self.cfg, path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> ImageTokenizer:
        """Load a tokenizer written by :meth:`save_pretrained`; FourmError on missing or corrupt files."""
        data, weights_path = read_pretrained_dir(path)
        cfg = ImageTokenizerConfig.from_dict(data)
        model = build_image_tokenizer(cfg) if cls is ImageTokenizer else cls(cfg)
        load_checked(model, weights_path, f"tokenizer weights {weights_path} do not match its config",
                     label="corrupt tokenizer weights")  # fmt: skip
        return model.to(device).eval()
