"""Typed configs of image tokenizers: architecture, quantiser, losses, GAN, diffusion decoder, training.

A YAML file in ``configs/tokenizers/`` is one :class:`ImageTokenizerConfig` (its ``train`` section
holds the training-loop settings used by ``fourm-tokenizer train``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from fourm.errors import FourmError
from fourm.utils.config import Config
from tokenizers_zoo.quantizers import QuantizerConfig

IMAGE_MODALITIES = ("rgb", "depth", "semseg", "normals", "edges")
# Network channels per modality (semseg uses num_classes).
MODALITY_CHANNELS = {"rgb": 3, "depth": 1, "normals": 3, "edges": 1}


@dataclass
class AuxTargetConfig(Config):
    """A second, training-only target decoded from the quantised latents by a small head, so that the
    codes must carry what it needs: e.g. an rgb tokenizer that also predicts the scene's semseg keeps a
    small hexagon's code apart from a small circle's (issue 16). The head is saved but never used by
    ``encode`` / ``decode``; the training data must hold the ``modality`` column."""

    modality: Literal["semseg", "edges"] | None = None  # None: no auxiliary target
    num_classes: int | None = None  # semseg: number of class ids
    weight: float = 1.0  # multiplies its loss (semseg: cross-entropy, edges: BCE)
    width: int = 16  # the head's first-level channels (a ConvDecoder like the main one's)

    def validate(self) -> None:
        if self.modality is None:
            return
        if self.modality == "semseg" and (self.num_classes is None or self.num_classes < 2):
            raise FourmError(f"loss.aux.num_classes must be >= 2 for a semseg target, got {self.num_classes}")
        if self.weight < 0 or self.width < 1:
            raise FourmError(f"loss.aux.weight must be >= 0 and loss.aux.width >= 1, got {self.weight}, {self.width}")


@dataclass
class LossConfig(Config):
    """Reconstruction / quantiser / perceptual loss weights, and an optional auxiliary target."""

    recon: Literal["l1", "l2"] = "l1"  # for rgb, depth, normals (semseg: cross-entropy, edges: BCE)
    recon_weight: float = 1.0
    quantizer_weight: float = 1.0  # commitment / codebook / KL term from the quantiser
    edge_pos_weight: float = 1.0  # BCE weight of edge pixels (edges are sparse)
    detail_weight: float = 0.0  # rgb/depth/normals: extra weight on pixels at the target's edges (losses.py)
    perceptual_weight: float = 0.0  # > 0 needs perceptual_weights (a safetensors file; nothing is downloaded)
    perceptual_weights: str | None = None
    aux: AuxTargetConfig = field(default_factory=AuxTargetConfig)

    def validate(self) -> None:
        self.aux.validate()
        for name in ("recon_weight", "quantizer_weight", "detail_weight", "perceptual_weight"):
            if getattr(self, name) < 0:
                raise FourmError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class GanConfig(Config):
    """VQGAN-style adversarial training with a PatchGAN discriminator and hinge loss."""

    enabled: bool = False
    disc_start: int = 1000  # training step at which the discriminator (and its generator loss) starts
    disc_weight: float = 0.5  # multiplies the (adaptive) generator weight
    adaptive_weight: bool = True  # scale by ||grad rec|| / ||grad gan|| at the decoder's last layer
    max_adaptive_weight: float = 1e4
    disc_loss_weight: float = 1.0
    disc_width: int = 64
    disc_layers: int = 3


@dataclass
class DiffusionConfig(Config):
    """Diffusion decoder (``decoder: diffusion``): UNet2DModel sizes and DDPM/DDIM settings."""

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    num_train_timesteps: int = 1000
    sample_steps: int = 20  # DDIM steps used by decode()
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon"
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    seed: int = 0  # seed of the initial noise in decode(), so decoding is deterministic


@dataclass
class DynamicConfig(Config):
    """``architecture: dynamic`` (LaVIT-style dynamic-length tokens; tokenizers_zoo/image/dynamic.py)."""

    token_width: int = 128  # width of the selector / merger / decoder transformers over the patch tokens
    merger_depth: int = 1  # transformer blocks among the kept tokens after merging the dropped ones
    decoder_depth: int = 2  # transformer blocks over kept tokens + mask tokens before the conv decoder
    target_ratio: float = 0.25  # rho: wanted fraction of kept patches, on average over a batch (LaVIT)
    ratio_weight: float = 2.0  # lambda of (rho - kept fraction)^2 (LaVIT uses 2)
    gumbel_temperature: float = 1.0  # Gumbel-softmax temperature of the keep/drop decisions in training
    threshold: float = 0.5  # inference: keep a patch when its keep probability exceeds this
    max_tokens: int | None = None  # cap on kept tokens per image (None: every patch may be kept)
    num_reserved: int = 37  # ids shared with the text vocabulary: [PAD] [SOS] [EOS] [UNK] [MASK] + 32 sentinels
    # against the selector learning the ratio before the codes carry anything (first run collapsed,
    # docs/experiments/dynamic_tokenizer.md): keep every patch first, then lower the ratio target
    keep_all_steps: int = 0  # training steps with every patch kept (the selector only learns ratio 1)
    ratio_ramp_steps: int = 0  # then the ratio target falls linearly from 1 to target_ratio over these steps
    kmeans_after_keep_all: bool = False  # redo the vq codebook's k-means init on the first step after keep_all_steps
    # "quantile": the inference threshold is an EMA of the (1 - ratio target) quantile of the training
    # batches' keep probabilities (a buffer saved with the weights); "fixed": ``threshold``
    threshold_mode: Literal["fixed", "quantile"] = "fixed"
    threshold_ema: float = 0.99  # decay of that EMA

    def validate(self) -> None:
        if min(self.token_width, self.merger_depth + 1, self.decoder_depth) < 1:
            raise FourmError("dynamic.token_width and dynamic.decoder_depth must be >= 1, merger_depth >= 0")
        if not 0.0 < self.target_ratio <= 1.0:
            raise FourmError(f"dynamic.target_ratio must be in (0, 1], got {self.target_ratio}")
        if not 0.0 < self.threshold < 1.0:
            raise FourmError(f"dynamic.threshold must be in (0, 1), got {self.threshold}")
        if not (self.gumbel_temperature > 0 and math.isfinite(self.gumbel_temperature)):
            raise FourmError(f"dynamic.gumbel_temperature must be > 0, got {self.gumbel_temperature}")
        if self.ratio_weight < 0:
            raise FourmError(f"dynamic.ratio_weight must be >= 0, got {self.ratio_weight}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise FourmError(f"dynamic.max_tokens must be >= 1, got {self.max_tokens}")
        if self.num_reserved < 3:
            raise FourmError(f"dynamic.num_reserved must be >= 3 ([PAD] [SOS] [EOS]), got {self.num_reserved}")
        if min(self.keep_all_steps, self.ratio_ramp_steps) < 0:
            raise FourmError(
                f"dynamic.keep_all_steps and dynamic.ratio_ramp_steps must be >= 0, got "
                f"{self.keep_all_steps}, {self.ratio_ramp_steps}"
            )
        if self.kmeans_after_keep_all and self.keep_all_steps == 0:
            raise FourmError("dynamic.kmeans_after_keep_all needs dynamic.keep_all_steps >= 1")
        if not 0.0 <= self.threshold_ema < 1.0:
            raise FourmError(f"dynamic.threshold_ema must be in [0, 1), got {self.threshold_ema}")


@dataclass
class TrainConfig(Config):
    """Training-loop settings for ``fourm-tokenizer train``."""

    steps: int = 5000
    max_minutes: float | None = None  # stop early after this wall-clock time
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # 0 disables clipping
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"
    eval_every: int = 500
    eval_samples: int = 512  # val images per evaluation
    save_every: int = 100  # steps between saves of the state an interrupted run resumes from (and at evaluations)
    hflip: bool = True  # random horizontal flips (not applied to normals, whose x would flip sign)
    gumbel_temperature_end: float | None = None  # gumbel: anneal from quantizer.temperature to this (exp.)
    seed: int = 0
    # "decoder": the encoder and quantiser stay frozen (a started tokenizer's, so its tokens do not
    # change) and only the decoder side learns (``fourm-tokenizer finetune-decoder``)
    trainable: Literal["all", "decoder"] = "all"
    # decoder training only: each token's code is swapped for a random enabled code with this
    # probability, so the decoder learns to draw token maps that no encoder made (generated ones)
    token_noise: float = 0.0
    # with token_noise: a class-map column of the data (semseg, class 0 the background); only the codes
    # of patches with no other class are swapped, each for the code of another such patch in the batch
    # (a generated map's typical error: a wrong but plausible ground code beside an object)
    token_noise_ground: str | None = None


@dataclass
class ImageTokenizerConfig(Config):
    """Everything needed to build an :class:`~tokenizers_zoo.image.tokenizer.ImageTokenizer`."""

    modality: Literal["rgb", "depth", "semseg", "normals", "edges"] = "rgb"
    image_size: int = 64
    in_channels: int | None = None  # derived from the modality when None
    out_channels: int | None = None  # derived from the modality when None
    num_classes: int | None = None  # semseg: number of class ids (decoder outputs this many logits)
    architecture: Literal["conv", "vit", "titok", "dynamic", "vqvae2"] = "conv"
    decoder: Literal["deterministic", "diffusion"] = "deterministic"
    downsample: int = 8  # conv: total downsampling; vit/titok: patch size
    # conv
    width: int = 32  # conv: channels of the first level; vit/titok: transformer width
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)  # conv: one entry per level (log2(downsample) + 1)
    num_res_blocks: int = 1
    decoder_width: int | None = None  # conv / vqvae2: the decoder's first-level channels (None: width)
    decoder_res_blocks: int | None = None  # conv / vqvae2: res blocks per decoder level (None: num_res_blocks)
    # vit / titok
    depth: int = 4
    num_heads: int = 4
    num_latent_tokens: int = 32  # titok: K, the number of 1D tokens
    # vqvae2 (two-level VQ-VAE-2, vqvae2.py): top grid = bottom grid (image_size / downsample) / top_downsample
    top_downsample: int = 2
    quantizer: QuantizerConfig = field(default_factory=lambda: QuantizerConfig(kind="vq", dim=16))
    loss: LossConfig = field(default_factory=LossConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)  # architecture 'dynamic' only

    @property
    def channels_in(self) -> int:
        """Encoder input channels (semseg: one-hot classes)."""
        if self.in_channels is not None:
            return self.in_channels
        return self.num_classes if self.modality == "semseg" else MODALITY_CHANNELS[self.modality]

    @property
    def channels_out(self) -> int:
        """Decoder output channels (semseg: class logits; edges: one logit)."""
        if self.out_channels is not None:
            return self.out_channels
        return self.num_classes if self.modality == "semseg" else MODALITY_CHANNELS[self.modality]

    def validate(self) -> None:
        for sub in (self.quantizer, self.loss, self.gan, self.diffusion, self.train):
            sub.validate()
        if self.modality == "semseg":
            if self.num_classes is None or self.num_classes < 2:
                raise FourmError(f"semseg tokenizer needs num_classes >= 2, got {self.num_classes}")
        want = None if self.modality == "semseg" else MODALITY_CHANNELS[self.modality]
        want = self.num_classes if want is None else want
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if value is not None and value != want:
                raise FourmError(f"{name} for modality '{self.modality}' must be {want}, got {value}")
        if self.image_size < 8:
            raise FourmError(f"image_size must be >= 8, got {self.image_size}")
        levels = math.log2(self.downsample) if self.downsample > 0 else -1
        if levels < 0 or levels != int(levels):
            raise FourmError(f"downsample must be a power of two, got {self.downsample}")
        if self.image_size % self.downsample:
            raise FourmError(f"image_size {self.image_size} is not divisible by downsample {self.downsample}")
        if self.architecture in ("conv", "dynamic", "vqvae2") and len(self.channel_mult) != int(levels) + 1:
            raise FourmError(
                f"channel_mult needs {int(levels) + 1} entries for downsample {self.downsample} "
                f"(one per resolution level), got {list(self.channel_mult)}"
            )
        if self.architecture == "dynamic":
            self._validate_dynamic()
        elif self.architecture == "vqvae2":
            self._validate_vqvae2()
        elif self.architecture != "conv" and self.width % self.num_heads:
            raise FourmError(f"width {self.width} must be divisible by num_heads {self.num_heads}")
        if min(self.width, self.num_res_blocks, self.depth, self.num_latent_tokens) < 1:
            raise FourmError("width, num_res_blocks, depth and num_latent_tokens must all be >= 1")
        self._validate_decoder_shape()
        if not 0.0 <= self.train.token_noise < 1.0:
            raise FourmError(f"train.token_noise must be in [0, 1), got {self.train.token_noise}")
        if self.train.token_noise > 0 and (self.train.trainable != "decoder" or self.architecture != "conv"):
            raise FourmError("train.token_noise > 0 needs train.trainable 'decoder' and architecture 'conv' "
                             "(the codes it swaps must be fixed)")  # fmt: skip
        if self.train.token_noise_ground is not None and self.train.token_noise == 0:
            raise FourmError("train.token_noise_ground needs train.token_noise > 0 (the rate of swaps)")
        if self.loss.aux.modality is not None and self.architecture != "conv":
            raise FourmError(f"loss.aux (an auxiliary target) needs architecture 'conv', got '{self.architecture}'")
        if self.decoder == "diffusion":
            if self.modality not in ("rgb", "depth", "normals"):
                raise FourmError(
                    f"decoder 'diffusion' supports rgb, depth and normals, not '{self.modality}'"
                )
            if self.gan.enabled:
                raise FourmError("gan.enabled cannot be combined with decoder 'diffusion'")
            if self.loss.perceptual_weight > 0:
                raise FourmError("loss.perceptual_weight > 0 cannot be combined with decoder 'diffusion'")
        if self.loss.perceptual_weight > 0:
            if self.modality != "rgb":
                raise FourmError(f"the perceptual loss is for rgb only, not '{self.modality}'")
            if not self.loss.perceptual_weights:
                raise FourmError(
                    "loss.perceptual_weight > 0 needs loss.perceptual_weights "
                    "(path to a safetensors file with PerceptualNet weights)"
                )
        if self.train.batch_size < 1 or self.train.steps < 0 or self.train.eval_every < 1 or self.train.save_every < 0:
            raise FourmError("train.batch_size and train.eval_every must be >= 1, train.steps and train.save_every >= 0")

    def _validate_decoder_shape(self) -> None:
        """``decoder_width`` / ``decoder_res_blocks``: conv and vqvae2 decoders only, >= 1."""
        for name in ("decoder_width", "decoder_res_blocks"):
            value = getattr(self, name)
            if value is None:
                continue
            if self.architecture not in ("conv", "vqvae2"):
                raise FourmError(f"{name} is for architectures conv and vqvae2, not '{self.architecture}'")
            if value < 1:
                raise FourmError(f"{name} must be >= 1, got {value}")

    @property
    def decoder_shape(self) -> tuple[int, int]:
        """(first-level width, res blocks per level) of the conv decoder."""
        width = self.width if self.decoder_width is None else self.decoder_width
        blocks = self.num_res_blocks if self.decoder_res_blocks is None else self.decoder_res_blocks
        return width, blocks

    def _validate_vqvae2(self) -> None:
        """Rules of ``architecture: vqvae2`` (two vq codebooks over a conv encoder, conv decoder)."""
        if self.quantizer.kind != "vq":
            raise FourmError(f"architecture 'vqvae2' needs quantizer kind 'vq', got '{self.quantizer.kind}'")
        if self.decoder != "deterministic":
            raise FourmError(f"architecture 'vqvae2' needs decoder 'deterministic', got '{self.decoder}'")
        t, grid = self.top_downsample, self.image_size // self.downsample
        if t < 2 or 2 ** int(math.log2(t)) != t:
            raise FourmError(f"top_downsample must be a power of two >= 2, got {t}")
        if grid % t:
            raise FourmError(f"top_downsample {t} does not divide the bottom grid {grid}x{grid}")

    def _validate_dynamic(self) -> None:
        """Rules of ``architecture: dynamic`` (conv stem and decoder, transformers of dynamic.token_width)."""
        self.dynamic.validate()
        if self.dynamic.token_width % self.num_heads:
            raise FourmError(
                f"dynamic.token_width {self.dynamic.token_width} must be divisible by num_heads {self.num_heads}"
            )
        if self.decoder != "deterministic" or self.gan.enabled or self.loss.perceptual_weight > 0:
            raise FourmError(
                "architecture 'dynamic' supports decoder 'deterministic' without gan or perceptual loss"
            )
        if self.dynamic.kmeans_after_keep_all and self.quantizer.kind != "vq":
            raise FourmError(f"dynamic.kmeans_after_keep_all needs quantizer kind 'vq', got '{self.quantizer.kind}'")
        patches = (self.image_size // self.downsample) ** 2
        if self.dynamic.max_tokens is not None and self.dynamic.max_tokens > patches:
            raise FourmError(f"dynamic.max_tokens must be <= the {patches} patches, got {self.dynamic.max_tokens}")
