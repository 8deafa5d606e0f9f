"""VideoTokenizer: one tokenizer for images and clips (first frame on its own, then space-time patches).

Model convention: a clip is a float tensor (B, T, 3, H, W) in [-1, 1] with 1 <= T <= max_frames; an
image batch (B, 3, H, W) is a one-frame clip. A clip is padded to T' = 1 + G * tp frames by repeating
its last frame, G = ceil((T - 1) / tp), and encodes to ``(1 + G) * S`` tokens, S = (H/p) * (W/p).

Token layout (what a FourM modality sees): group-major, row-major within a group,

    tokens[:, g * S + i * (W/p) + j] = code of group g at patch row i, column j

so the first S tokens are the image tokens of frame 0 (exactly ``encode(frame 0)``: the encoder is
causal over groups) and the whole sequence is a (1 + G) * (H/p) x (W/p) grid: the groups stacked
as rows of one tall token image, which an image-kind FourM modality with 2D positions can take.
``decode(tokens, num_frames)`` returns the clip cropped to ``num_frames`` (default T').
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.utils.weights import load_checked, read_pretrained_dir, save_pretrained_dir
from tokenizers_zoo.quantizers import QuantizerOutput, build_quantizer
from tokenizers_zoo.video.config import VideoTokenizerConfig
from tokenizers_zoo.video.model import VideoDecoder, VideoEncoder

CHANNELS = 3


class VideoTokenizer(nn.Module):
    """Joint image-video VQ tokenizer; see the module docstring for tensors and the token layout."""

    def __init__(self, cfg: VideoTokenizerConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.quantizer = build_quantizer(cfg.quantizer)
        kw = dict(image_size=cfg.image_size, patch=cfg.patch, temporal_patch=cfg.temporal_patch, width=cfg.width,
                  depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, max_groups=cfg.max_groups)  # fmt: skip
        self.encoder = VideoEncoder(CHANNELS, self.quantizer.dim, **kw)
        self.decoder = VideoDecoder(CHANNELS, self.quantizer.dim, **kw)

    # ---- sizes -----------------------------------------------------------------------------------

    @property
    def tokens_per_group(self) -> int:
        """S: tokens of one frame group (= image tokens)."""
        return self.cfg.grid**2

    def num_groups(self, num_frames: int) -> int:
        """1 + G frame groups of a ``num_frames`` clip."""
        return 1 + -(-(num_frames - 1) // self.cfg.temporal_patch)

    def grid_size(self, num_frames: int | None = None) -> tuple[int, int, int]:
        """(groups, h, w) token layout of a clip (default: ``max_frames``)."""
        g = self.num_groups(num_frames or self.cfg.max_frames)
        return (g, self.cfg.grid, self.cfg.grid)

    def tokens_for(self, num_frames: int) -> int:
        """Number of tokens of a ``num_frames`` clip (1 frame: the image tokens)."""
        return math.prod(self.grid_size(num_frames))

    @property
    def num_tokens(self) -> int:
        """Tokens of a ``max_frames`` clip."""
        return self.tokens_for(self.cfg.max_frames)

    @property
    def vocab_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- raw arrays <-> model tensors ----------------------------------------------------------

    def preprocess(self, arrays: np.ndarray | Sequence[np.ndarray]) -> Tensor:
        """uint8 frames -> model tensor in [-1, 1]: an image (H, W, 3) -> (1, 3, H, W) one-frame clip,
        a clip (T, H, W, 3) -> (T, 3, H, W), a batch of clips (B, T, H, W, 3) -> (B, T, 3, H, W)."""
        a = np.asarray(arrays)
        size = self.cfg.image_size
        if a.ndim == 3:
            a = a[None]
        if a.ndim not in (4, 5) or a.shape[-3:] != (size, size, CHANNELS) or a.dtype != np.uint8:
            raise FourmError(
                f"video tokenizer expects uint8 frames (..., {size}, {size}, 3) (an image, a clip or a batch of "
                f"clips), got {a.dtype} {tuple(a.shape)}"
            )
        x = torch.from_numpy(np.ascontiguousarray(a)).float() / 127.5 - 1.0
        return x.movedim(-1, -3)

    def postprocess(self, video: Tensor) -> np.ndarray:
        """Model tensor (..., 3, H, W) -> uint8 frames (..., H, W, 3)."""
        x = ((video.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return x.movedim(-3, -1).numpy()

    def as_clip(self, video: Tensor) -> Tensor:
        """(B, 3, H, W) images -> (B, 1, 3, H, W); clips are checked: FourmError for other shapes."""
        size, c = self.cfg.image_size, CHANNELS
        if video.dim() == 4:
            video = video[:, None]
        if video.dim() != 5 or tuple(video.shape[2:]) != (c, size, size) or not video.dtype.is_floating_point:
            raise FourmError(
                f"video tokenizer expects a float clip (B, T, {c}, {size}, {size}) or images (B, {c}, {size}, {size}), "
                f"got {video.dtype} {tuple(video.shape)}"
            )
        if not 1 <= video.shape[1] <= self.cfg.max_frames:
            raise FourmError(f"clip of {video.shape[1]} frames (expected 1..{self.cfg.max_frames} frames)")
        return video

    def pad(self, video: Tensor) -> Tensor:
        """Repeat the last frame so (B, T, ...) becomes (B, 1 + G * tp, ...)."""
        t = video.shape[1]
        target = 1 + (self.num_groups(t) - 1) * self.cfg.temporal_patch
        if target == t:
            return video
        return torch.cat([video, video[:, -1:].expand(-1, target - t, *video.shape[2:])], dim=1)

    # ---- tokenizer API ---------------------------------------------------------------------------

    def quantize(self, video: Tensor) -> QuantizerOutput:
        """Clip or images -> QuantizerOutput with z_q (B, D, 1 + G, S) and indices (B, 1 + G, S)."""
        z = self.encoder(self.pad(self.as_clip(video)))  # (B, 1 + G, S, D)
        return self.quantizer(z.permute(0, 3, 1, 2))

    def decode_latents(self, z_q: Tensor, num_frames: int | None = None) -> Tensor:
        """Latents (B, D, 1 + G, S) -> clip (B, T, 3, H, W), cropped to ``num_frames`` when given."""
        out = self.decoder(z_q.permute(0, 2, 3, 1))
        return out if num_frames is None else out[:, :num_frames]

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """Clip (B, T, 3, H, W) or images (B, 3, H, W) -> tokens (B, N). Never updates codebook statistics."""
        was_training = self.quantizer.training
        self.quantizer.eval()
        try:
            return self.quantize(video).indices.reshape(video.shape[0], -1).long()
        finally:
            self.quantizer.train(was_training)

    @torch.no_grad()
    def decode(self, tokens: Tensor, num_frames: int | None = None) -> Tensor:
        """Tokens (B, (1 + G) * S) -> clip (B, T, 3, H, W) in [-1, 1]; T = ``num_frames`` or 1 + G * tp."""
        s = self.tokens_per_group
        if tokens.dim() != 2 or tokens.shape[1] % s or not 1 <= tokens.shape[1] // s <= self.cfg.max_groups:
            raise FourmError(
                f"expected tokens (B, k * {s}) with 1 <= k <= {self.cfg.max_groups} groups, got {tuple(tokens.shape)}"
            )
        groups = tokens.shape[1] // s
        longest = 1 + (groups - 1) * self.cfg.temporal_patch
        if num_frames is not None and not (self.num_groups(num_frames) == groups and num_frames <= longest):
            raise FourmError(f"{groups} token groups cannot decode to {num_frames} frames")
        z_q = self.quantizer.indices_to_latents(tokens.reshape(tokens.shape[0], groups, s))
        return self.decode_latents(z_q, num_frames).float().clamp(-1, 1)

    def forward(self, video: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Training forward: (reconstruction (B, T, 3, H, W) cropped to the input's T, quantiser output)."""
        video = self.as_clip(video)
        q = self.quantize(video)
        return self.decode_latents(q.z_q, video.shape[1]), q

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Reconstruction (l1 / l2 over all frames) + quantizer_weight * quantiser loss; fp32 scalar and logs."""
        video = self.as_clip(video)
        recon, q = self(video)
        fn = F.l1_loss if self.cfg.recon == "l1" else F.mse_loss
        rec = fn(recon.float(), video.float())
        total = rec + self.cfg.quantizer_weight * q.loss.float()
        logs = {
            "loss": float(total.detach()),
            "recon": float(rec.detach()),
            "quantizer": float(q.loss.detach()),
        }
        logs.update({f"q_{k}": float(v) for k, v in q.metrics.items()})
        return total, logs

    # ---- persistence -----------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` + ``model.safetensors`` into directory ``path`` atomically."""
        save_pretrained_dir(self, self.cfg, path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> VideoTokenizer:
        """Load a tokenizer written by :meth:`save_pretrained`; FourmError on missing or corrupt files."""
        data, weights_path = read_pretrained_dir(path)
        model = cls(VideoTokenizerConfig.from_dict(data))
        load_checked(model, weights_path, f"tokenizer weights {weights_path} do not match its config",
                     label="corrupt tokenizer weights")  # fmt: skip
        return model.to(device).eval()
