"""The VQ-VAE tokenizers released with apple/ml-4m (``EPFL-VILAB/4M_tokenizers_*``), as a fourm tokenizer.

fourm's :class:`~tokenizers_zoo.image.ImageTokenizer` cannot express these networks (no final norm
but an optional tanh MLP after the ViT, a label embedding instead of one-hot classes, 1x1 feature-map
inputs, MLP encoders for global vectors, multi-head "memcodes" quantisers), so they get this small
class of their own. Checkpoints are converted with :mod:`fourm.convert.ml4m_vqvae`; this module only
holds the network and its files.

Computation (all in fp32)::

    input -> [label embedding | ImageNet un-standardisation] -> encoder -> to_latent (linear)
          -> quantiser (nearest code) -> ids
    ids -> code vectors -> from_latent (linear) -> decoder -> output

* encoder / decoder ``vit``: pre-norm Transformer blocks (LayerNorm eps 1e-6, biased QKV, GELU MLP)
  on patch tokens plus a fixed 2D sin-cos table stored at the training grid and resized bicubically
  to the grid at hand; optional residual tanh MLP (``post_mlp``) after the blocks; the decoder ends
  with a linear pixel head (channel-major ``(c, py, px)`` per patch) and optional ConvNeXt blocks.
* encoder / decoder ``bottleneck_mlp`` / ``mlp``: point-wise MLPs (global feature vectors, poses).
* quantiser ``cosine``: nearest code by cosine similarity (inputs and codes l2-normalised); the code
  vectors themselves are returned. ``euclidean``: nearest code by squared distance (inputs
  l2-normalised first if ``norm_latents``). ``memcodes``: ``num_codebooks`` heads, each picking the
  code whose key (``codes @ keys``) has the largest dot product with its slice of the latent
  (scaled by ``head_dim ** -0.5``) and returning that code's value (``codes @ values``).

Input convention of :meth:`Ml4mVQVAE.encode` (that of the ml-4m tokenizer, unchanged):

==========  ======================================================================================
input       tensor
==========  ======================================================================================
pixels      float (B, C, H, W); ImageNet-standardised if ``undo_std`` (mapped to [-1, 1] first)
labels      long (B, H, W) class ids (semantic segmentation)
features    float (B, C, h, w) feature map (CLIP / DINOv2 / ImageBind patch features)
vector      float (B, C) or (B, C, 1, 1) (global feature vectors, body poses)
==========  ======================================================================================

Tokens are ``(B, N)`` long: the grid in row-major order (memcodes: head-major, then the grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.errors import FourmError
from fourm.utils.config import Config

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "ml4m-vqvae"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Ml4mBackboneConfig(Config):
    """One side (encoder or decoder) of an ml-4m VQ-VAE."""

    kind: Literal["vit", "bottleneck_mlp", "mlp"] = "vit"
    width: int = 768
    depth: int = 12  # vit: blocks; bottleneck_mlp: residual blocks; mlp: number of widths (depth - 1 layers)
    num_heads: int = 12  # vit
    mlp_ratio: float = 4.0  # vit: hidden width of the block MLPs and of post_mlp
    post_mlp: bool = False  # vit: residual tanh MLP after the blocks (encoder) / before the head (decoder)
    grid: tuple[int, int] = (14, 14)  # vit: grid of the stored position table (training resolution)
    expansion: int = 4  # bottleneck_mlp: hidden width = expansion * width

    def validate(self) -> None:
        if min(self.width, self.depth, self.num_heads, self.expansion, *self.grid) < 1:
            raise FourmError(f"ml-4m backbone sizes must be >= 1, got {self.to_dict()}")
        if self.kind == "vit" and self.width % self.num_heads:
            raise FourmError(f"vit width {self.width} is not divisible by num_heads {self.num_heads}")
        if self.kind == "vit" and self.width % 4:
            raise FourmError(f"vit width {self.width} must be divisible by 4 (2D sin-cos positions)")


@dataclass
class Ml4mVQVAEConfig(Config):
    """Everything needed to build an :class:`Ml4mVQVAE` (written as its ``config.json``)."""

    format: str = FORMAT
    domain: str = ""  # what it tokenizes, informative (e.g. "semseg_coco", "CLIP-B16", "tok_semseg@224")
    input: Literal["pixels", "labels", "features", "vector"] = "pixels"
    in_channels: int = 3  # pixels / features / vector channels; labels: width of the label embedding
    num_labels: int | None = None  # labels: number of class ids
    undo_std: bool = False  # pixels: inputs are ImageNet-standardised; map them to [-1, 1] first
    image_size: int = 224  # working size: tokens on a (image_size // patch_size)^2 grid by default
    patch_size: int = 16  # pixels per token side (features: pixels of the feature extractor's patch)
    encoder: Ml4mBackboneConfig = field(default_factory=Ml4mBackboneConfig)
    decoder: Ml4mBackboneConfig | None = field(default_factory=Ml4mBackboneConfig)  # None: encoder only
    decoder_patch_size: int = 16  # pixels: side of the patch each decoder token writes
    out_channels: int = 3  # decoder outputs (labels: class logits)
    out_conv: bool = False  # two ConvNeXt blocks after the decoder's pixel head
    latent_dim: int = 32
    quantizer: Literal["cosine", "euclidean", "memcodes"] = "cosine"
    codebook_size: int = 16384
    num_codebooks: int = 1  # memcodes: heads (one token each per position)
    norm_latents: bool = False  # euclidean: l2-normalise latents before the nearest-code search

    def validate(self) -> None:
        if self.format != FORMAT:
            raise FourmError(f"not an ml-4m VQ-VAE config: format is {self.format!r}, expected {FORMAT!r}")
        for name in ("in_channels", "image_size", "patch_size", "decoder_patch_size", "out_channels",
                     "latent_dim", "codebook_size", "num_codebooks"):
            if getattr(self, name) < 1:
                raise FourmError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.input == "labels" and (self.num_labels is None or self.num_labels < 1):
            raise FourmError(f"input 'labels' needs num_labels >= 1, got {self.num_labels}")
        if self.undo_std and (self.input != "pixels" or self.in_channels != 3):
            raise FourmError("undo_std needs 3-channel pixel inputs")
        if self.quantizer != "memcodes" and self.num_codebooks != 1:
            raise FourmError(f"num_codebooks={self.num_codebooks} needs the memcodes quantizer")
        if self.latent_dim % self.num_codebooks:
            raise FourmError(f"latent_dim {self.latent_dim} is not divisible by num_codebooks {self.num_codebooks}")
        if self.input == "vector" and self.encoder.kind == "vit":
            raise FourmError("vector inputs need an MLP encoder (bottleneck_mlp or mlp), not vit")
        if self.input != "vector" and self.image_size % self.patch_size:
            raise FourmError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        self.encoder.validate()
        if self.decoder is not None:
            self.decoder.validate()

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid at ``image_size`` ((1, 1) for vector inputs)."""
        if self.input == "vector":
            return (1, 1)
        side = self.image_size // self.patch_size
        return (side, side)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid_size) * (self.num_codebooks if self.quantizer == "memcodes" else 1)


# ------------------------------------------------------------------------------------ networks
class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, D)
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, d)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    """Pre-norm Transformer block with biased linears, GELU MLP and LayerNorm eps 1e-6."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class _PostMLP(nn.Module):
    """x + fc2(tanh(fc1(norm(x))))."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(torch.tanh(self.fc1(self.norm(x))))


class _ViT(nn.Module):
    """Tokens (B, N, D) on a (h, w) grid -> blocks (+ resized positions first, post MLP last)."""

    def __init__(self, cfg: Ml4mBackboneConfig):
        super().__init__()
        self.register_buffer("pos", torch.zeros(1, cfg.width, *cfg.grid))  # (1, D, gh, gw)
        self.blocks = nn.ModuleList(_Block(cfg.width, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.post = _PostMLP(cfg.width, int(cfg.mlp_ratio * cfg.width)) if cfg.post_mlp else None

    def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        pos = F.interpolate(self.pos, size=grid, mode="bicubic", align_corners=False)
        x = x + pos.flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return x if self.post is None else self.post(x)


class _BottleneckMLP(nn.Module):
    """Point-wise: linear_in, residual blocks x + fc2(gelu(fc1(norm(x)))), linear_out."""

    def __init__(self, cfg: Ml4mBackboneConfig, dim_in: int, dim_out: int):
        super().__init__()
        w = cfg.width
        self.linear_in = nn.Linear(dim_in, w)
        self.norms = nn.ModuleList(nn.LayerNorm(w) for _ in range(cfg.depth))
        self.fc1 = nn.ModuleList(nn.Linear(w, cfg.expansion * w) for _ in range(cfg.depth))
        self.fc2 = nn.ModuleList(nn.Linear(cfg.expansion * w, w) for _ in range(cfg.depth))
        self.linear_out = nn.Linear(w, dim_out)

    def forward(self, x: Tensor) -> Tensor:  # (..., dim_in)
        x = self.linear_in(x)
        for norm, fc1, fc2 in zip(self.norms, self.fc1, self.fc2):
            x = x + fc2(F.gelu(fc1(norm(x))))
        return self.linear_out(x)


class _PlainMLP(nn.Module):
    """Point-wise, no activation: linear_in, (norm, linear) x (depth - 1), linear_out."""

    def __init__(self, cfg: Ml4mBackboneConfig, dim_in: int, dim_out: int):
        super().__init__()
        w = cfg.width
        self.linear_in = nn.Linear(dim_in, w)
        self.norms = nn.ModuleList(nn.LayerNorm(w) for _ in range(cfg.depth - 1))
        self.layers = nn.ModuleList(nn.Linear(w, w) for _ in range(cfg.depth - 1))
        self.linear_out = nn.Linear(w, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear_in(x)
        for norm, layer in zip(self.norms, self.layers):
            x = layer(norm(x))
        return self.linear_out(x)


class _ConvNeXtBlock(nn.Module):
    """x + gamma * fc2(gelu(fc1(norm(depthwise7x7(x))))) on (B, C, H, W)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        h = self.dwconv(x).permute(0, 2, 3, 1)
        h = self.gamma * self.fc2(F.gelu(self.fc1(self.norm(h))))
        return x + h.permute(0, 3, 1, 2)


def _mlp(cfg: Ml4mBackboneConfig, dim_in: int, dim_out: int) -> nn.Module:
    return _BottleneckMLP(cfg, dim_in, dim_out) if cfg.kind == "bottleneck_mlp" else _PlainMLP(cfg, dim_in, dim_out)


class _Codebook(nn.Module):
    """``cosine`` / ``euclidean`` nearest code over a (K, D) codebook (kept as a buffer)."""

    def __init__(self, kind: str, size: int, dim: int, norm_latents: bool):
        super().__init__()
        self.kind, self.norm_latents = kind, norm_latents
        self.register_buffer("codebook", torch.zeros(size, dim))

    def indices(self, z: Tensor) -> Tensor:  # (M, D) -> (M,)
        z = z.float()
        codes = self.codebook.float()
        if self.kind == "cosine":
            return (F.normalize(z, dim=-1) @ F.normalize(codes, dim=-1).t()).argmax(-1)
        if self.norm_latents:
            z = F.normalize(z, dim=-1)
        dist = (z.pow(2).sum(-1, keepdim=True) - 2 * z @ codes.t()) + codes.pow(2).sum(-1)[None]
        return (-dist).argmax(-1)  # the smallest squared distance (first one on ties)

    def lookup(self, ids: Tensor) -> Tensor:  # (...,) -> (..., D)
        return F.embedding(ids, self.codebook)


class _Memcodes(nn.Module):
    """``heads`` codebooks of (K, d) codes, with per-head key and value maps (d, d)."""

    def __init__(self, heads: int, size: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.codes = nn.Parameter(torch.zeros(heads, size, head_dim))
        self.keys = nn.Parameter(torch.zeros(heads, head_dim, head_dim))
        self.values = nn.Parameter(torch.zeros(heads, head_dim, head_dim))

    def indices(self, z: Tensor) -> Tensor:  # (M, H*d) -> (M, H)
        q = z.float().reshape(z.shape[0], self.heads, self.head_dim).transpose(0, 1) * self.head_dim**-0.5
        keys = torch.einsum("hkd,hde->hke", self.codes, self.keys)  # (H, K, d)
        return torch.einsum("hmd,hkd->hmk", q, keys).argmax(-1).t()  # (M, H)

    def lookup(self, ids: Tensor) -> Tensor:  # (M, H) -> (M, H*d)
        values = torch.einsum("hkd,hde->hke", self.codes, self.values)  # (H, K, d)
        out = torch.stack([values[h][ids[:, h]] for h in range(self.heads)], dim=1)  # (M, H, d)
        return out.reshape(ids.shape[0], -1)


# ------------------------------------------------------------------------------------ the tokenizer
class Ml4mVQVAE(nn.Module):
    """An ml-4m VQ-VAE: ``encode(x) -> (B, N)`` ids, ``decode(ids)`` -> decoder output.

    See the module docstring for inputs. ``decode`` returns class ids (B, H, W) for label inputs
    (the argmax of :meth:`decode_output`'s logits), ``(B, C)`` for vector inputs, else the decoder
    output (B, C, H, W) itself (pixels, or reconstructed feature maps).
    """

    def __init__(self, cfg: Ml4mVQVAEConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        enc, dec = cfg.encoder, cfg.decoder
        self.label_embed = nn.Embedding(cfg.num_labels, cfg.in_channels) if cfg.input == "labels" else None
        if enc.kind == "vit":
            per_token = cfg.in_channels * cfg.patch_size**2 if cfg.input in ("pixels", "labels") else cfg.in_channels
            self.patch_embed: nn.Linear | None = nn.Linear(per_token, enc.width)
            self.encoder: nn.Module = _ViT(enc)
        else:
            self.patch_embed = None
            self.encoder = _mlp(enc, cfg.in_channels, enc.width)
        self.to_latent = nn.Linear(enc.width, cfg.latent_dim)
        if cfg.quantizer == "memcodes":
            self.quantizer: nn.Module = _Memcodes(cfg.num_codebooks, cfg.codebook_size, cfg.latent_dim // cfg.num_codebooks)
        else:
            self.quantizer = _Codebook(cfg.quantizer, cfg.codebook_size, cfg.latent_dim, cfg.norm_latents)
        self.from_latent = self.decoder = self.head = self.out_conv = None
        if dec is not None:
            self.from_latent = nn.Linear(cfg.latent_dim, dec.width)
            if dec.kind == "vit":
                self.decoder = _ViT(dec)
                per_token = cfg.out_channels * (cfg.decoder_patch_size**2 if self._spatial_pixels else 1)
                self.head = nn.Linear(dec.width, per_token)
                if cfg.out_conv:
                    self.out_conv = nn.Sequential(_ConvNeXtBlock(cfg.out_channels), _ConvNeXtBlock(cfg.out_channels))
            else:
                self.decoder = _mlp(dec, dec.width, cfg.out_channels)
        self.eval()

    # ---- sizes ------------------------------------------------------------------------------------
    @property
    def _spatial_pixels(self) -> bool:
        return self.cfg.input in ("pixels", "labels")

    @property
    def vocab_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.cfg.grid_size

    @property
    def num_tokens(self) -> int:
        return self.cfg.num_tokens

    @property
    def heads(self) -> int:
        return self.cfg.num_codebooks if self.cfg.quantizer == "memcodes" else 1

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def __repr__(self) -> str:
        c = self.cfg
        return (f"Ml4mVQVAE(domain={c.domain!r}, input={c.input}, encoder={c.encoder.kind}, "
                f"decoder={c.decoder.kind if c.decoder else None}, quantizer={c.quantizer}, "
                f"vocab={c.codebook_size}, tokens={c.num_tokens})")

    # ---- encoder ----------------------------------------------------------------------------------
    def _prepare(self, x: Tensor) -> Tensor:
        """Model input -> encoder input (B, C, H, W) float, checked."""
        c = self.cfg
        if c.input == "labels":
            if x.dim() != 3 or x.dtype.is_floating_point:
                raise FourmError(f"{c.domain or 'label'} tokenizer expects long class ids (B, H, W), got {x.dtype} {tuple(x.shape)}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= c.num_labels):
                raise FourmError(f"class ids must be in [0, {c.num_labels - 1}], got [{int(x.min())}, {int(x.max())}]")
            return self.label_embed(x.long()).permute(0, 3, 1, 2)
        if c.input == "vector" and x.dim() == 2:
            x = x[:, :, None, None]
        if x.dim() != 4 or x.shape[1] != c.in_channels or not x.dtype.is_floating_point:
            want = {"pixels": "(B, C, H, W)", "features": "(B, C, h, w)", "vector": "(B, C) or (B, C, 1, 1)"}[c.input]
            raise FourmError(f"{c.domain or c.input} tokenizer expects a float tensor {want} with C={c.in_channels}, "
                             f"got {x.dtype} {tuple(x.shape)}")
        x = x.float()
        if c.undo_std:
            mean = torch.tensor(IMAGENET_MEAN, device=x.device)[None, :, None, None]
            std = torch.tensor(IMAGENET_STD, device=x.device)[None, :, None, None]
            x = 2.0 * (x * std + mean) - 1.0
        return x

    def latents(self, x: Tensor) -> Tensor:
        """Encoder + projection: model input -> continuous latents (B, latent_dim, h, w)."""
        c = self.cfg
        x = self._prepare(x)
        b, _, h, w = x.shape
        if c.encoder.kind != "vit":
            z = self.encoder(x.permute(0, 2, 3, 1))  # point-wise over (B, H, W, C)
            return self.to_latent(z).permute(0, 3, 1, 2)
        if self._spatial_pixels:
            p = c.patch_size
            if h % p or w % p:
                raise FourmError(f"image size {h}x{w} is not divisible by the patch size {p}")
            h, w = h // p, w // p
            tokens = x.reshape(b, x.shape[1], h, p, w, p).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w, -1)
        else:
            tokens = x.flatten(2).transpose(1, 2)  # (B, h*w, C)
        z = self.encoder(self.patch_embed(tokens), (h, w))
        return self.to_latent(z).transpose(1, 2).reshape(b, -1, h, w)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Model input -> token ids (B, N) long (see the module docstring)."""
        z = self.latents(x)  # (B, D, h, w)
        b, d, h, w = z.shape
        ids = self.quantizer.indices(z.permute(0, 2, 3, 1).reshape(-1, d))  # (B*h*w[, H])
        if self.heads > 1:
            return ids.reshape(b, h * w, self.heads).transpose(1, 2).reshape(b, -1)
        return ids.reshape(b, h * w)

    # ---- decoder ----------------------------------------------------------------------------------
    def _grid(self, n: int) -> tuple[int, int]:
        per_position, rem = divmod(n, self.heads)
        if self.cfg.input == "vector":
            if n != self.heads:
                raise FourmError(f"expected token ids of shape (B, {self.heads}), got {n} ids per row")
            return (1, 1)
        side = math.isqrt(per_position)
        if rem or side * side != per_position or side == 0:
            raise FourmError(f"{n} token ids per row do not form a square grid"
                             + (f" of {self.heads} heads" if self.heads > 1 else ""))
        return (side, side)

    def code_vectors(self, ids: Tensor) -> Tensor:
        """Token ids (B, N) -> their quantised latents (B, latent_dim, h, w)."""
        if ids.dim() != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise FourmError(f"expected integer token ids of shape (B, N), got {ids.dtype} {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise FourmError(f"token ids must be in [0, {self.vocab_size - 1}], got [{int(ids.min())}, {int(ids.max())}]")
        b, n = ids.shape
        h, w = self._grid(n)
        flat = ids.long().reshape(b, self.heads, h * w).transpose(1, 2).reshape(b * h * w, self.heads)
        q = self.quantizer.lookup(flat if self.heads > 1 else flat[:, 0])  # (B*h*w, D)
        return q.reshape(b, h, w, -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def decode_output(self, ids: Tensor) -> Tensor:
        """Token ids (B, N) -> raw decoder output (B, C_out, H, W) (labels: class logits)."""
        if self.decoder is None:
            raise FourmError(f"{self.cfg.domain or 'this'} tokenizer was converted without its decoder (encoder only)")
        c = self.cfg
        q = self.code_vectors(ids)
        b, _, h, w = q.shape
        x = self.from_latent(q.permute(0, 2, 3, 1))  # (B, h, w, D)
        if c.decoder.kind != "vit":
            return self.decoder(x).permute(0, 3, 1, 2)
        x = self.head(self.decoder(x.reshape(b, h * w, -1), (h, w)))  # (B, h*w, C*p*p)
        p = c.decoder_patch_size if self._spatial_pixels else 1
        out = x.reshape(b, h, w, c.out_channels, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c.out_channels, h * p, w * p)
        return out if self.out_conv is None else self.out_conv(out)

    @torch.no_grad()
    def decode(self, ids: Tensor) -> Tensor:
        """Token ids (B, N) -> labels: class ids (B, H, W); vector: (B, C); else the decoder output."""
        out = self.decode_output(ids)
        if self.cfg.input == "labels":
            return out.argmax(1)
        if self.cfg.input == "vector":
            return out.flatten(1)
        return out

    # ---- files ------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` + ``model.safetensors`` into directory ``path`` (replaced atomically)."""
        from fourm.utils.weights import save_pretrained_dir

        save_pretrained_dir(self, self.cfg, path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> Ml4mVQVAE:
        """Load a directory written by :meth:`save_pretrained`; FourmError for missing, corrupt or
        mismatched files."""
        from fourm.utils.config import read_json_object
        from fourm.utils.weights import load_checked

        path = Path(path)
        if not path.is_dir():
            raise FourmError(f"tokenizer directory not found: {path}")
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / name).is_file():
                raise FourmError(f"tokenizer {path} is missing {name} (expected {CONFIG_NAME} + {WEIGHTS_NAME})")
        data = read_json_object(path / CONFIG_NAME, "tokenizer config")
        if data.get("format") != FORMAT:
            raise FourmError(f"{path} is not a converted ml-4m VQ-VAE (config.json format is {data.get('format')!r}); "
                             "convert ml-4m checkpoints with fourm-convert ml4m-tokenizer")
        try:
            cfg = Ml4mVQVAEConfig.from_dict(data)
        except FourmError as e:
            raise FourmError(f"{path / CONFIG_NAME}: {e}") from None
        model = cls(cfg)
        load_checked(model, path / WEIGHTS_NAME, f"tokenizer weights {path / WEIGHTS_NAME} do not match its config",
                     label="corrupt tokenizer weights")  # fmt: skip
        return model.to(device).eval()
