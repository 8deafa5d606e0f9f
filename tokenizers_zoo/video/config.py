"""Typed config of the joint image-video tokenizer; ``configs/tokenizers/video.yaml`` is one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fourm.errors import FourmError
from fourm.utils.config import Config
from tokenizers_zoo.quantizers import QuantizerConfig


@dataclass
class StageConfig(Config):
    """One training stage: how long, and what a step sees."""

    steps: int = 1000
    max_minutes: float | None = None  # stop the stage early after this wall-clock time
    image_batch: int = 32  # single frames per step (encoded as one-frame videos)
    video_batch: int = 0  # clips per step (0: an image-only stage)

    def validate(self) -> None:
        if self.steps < 0 or self.image_batch < 0 or self.video_batch < 0:
            raise FourmError("stage steps, image_batch and video_batch must be >= 0")
        if self.steps and not (self.image_batch or self.video_batch):
            raise FourmError("a stage with steps needs image_batch > 0 or video_batch > 0")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise FourmError(f"stage max_minutes must be > 0, got {self.max_minutes}")


@dataclass
class VideoTrainConfig(Config):
    """Two stages (images first, then images and clips together) sharing one optimiser setting."""

    image_stage: StageConfig = field(default_factory=lambda: StageConfig(steps=1000, image_batch=32))
    joint_stage: StageConfig = field(
        default_factory=lambda: StageConfig(steps=2000, image_batch=16, video_batch=8)
    )
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # each stage: linear warm-up, then cosine to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # 0 disables clipping
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # bf16 autocast where the CPU/GPU runs it natively
    hflip: bool = True  # random horizontal flips (whole clips)
    eval_clips: int = 150  # held-out clips per evaluation
    log_every: int = 50
    save_every: int = 100  # steps between saves of the state an interrupted run resumes from
    seed: int = 0

    def validate(self) -> None:
        self.image_stage.validate()
        self.joint_stage.validate()
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise FourmError("train.lr must be > 0, min_lr_ratio in [0, 1], warmup_steps >= 0")
        if self.eval_clips < 1 or self.log_every < 1 or self.save_every < 1:
            raise FourmError("train.eval_clips, train.log_every and train.save_every must be >= 1")


@dataclass
class VideoTokenizerConfig(Config):
    """Everything needed to build a :class:`~tokenizers_zoo.video.tokenizer.VideoTokenizer`."""

    image_size: int = 64
    max_frames: int = 8  # longest clip: 1 first frame + ceil((max_frames - 1) / temporal_patch) groups
    patch: int = 8  # spatial patch side: (image_size / patch)^2 tokens per frame group
    temporal_patch: int = 2  # frames per space-time patch after the first frame
    width: int = 128
    depth: int = 4  # space-time blocks in the encoder and again in the decoder
    num_heads: int = 4
    mlp_ratio: float = 4.0
    recon: Literal["l1", "l2"] = "l1"
    quantizer_weight: float = 1.0
    quantizer: QuantizerConfig = field(
        default_factory=lambda: QuantizerConfig(
            kind="vq", dim=32, codebook_size=1024, code_dim=16, l2_normalize=True
        )
    )
    train: VideoTrainConfig = field(default_factory=VideoTrainConfig)

    @property
    def grid(self) -> int:
        """Tokens along each side of a frame group."""
        return self.image_size // self.patch

    @property
    def max_groups(self) -> int:
        """Frame groups of a ``max_frames`` clip (the first frame is group 0)."""
        return 1 + -(-(self.max_frames - 1) // self.temporal_patch)

    def validate(self) -> None:
        self.quantizer.validate()
        self.train.validate()
        if self.quantizer.dim is None:
            raise FourmError("the video tokenizer needs quantizer.dim (the latent width)")
        if self.image_size < 8 or self.patch < 1 or self.image_size % self.patch:
            raise FourmError(f"image_size {self.image_size} must be >= 8 and divisible by patch {self.patch}")
        if not 1 <= self.max_frames <= 256 or self.temporal_patch < 1:
            raise FourmError(
                f"max_frames must be in 1..256 and temporal_patch >= 1, got {self.max_frames}, {self.temporal_patch}"
            )
        if self.width < 1 or self.depth < 1 or self.num_heads < 1 or self.width % self.num_heads:
            raise FourmError(
                f"width {self.width} must be divisible by num_heads {self.num_heads}; depth >= 1"
            )
        if self.quantizer_weight < 0 or not self.mlp_ratio > 0:
            raise FourmError("quantizer_weight must be >= 0 and mlp_ratio > 0")
