"""DynamicImageTokenizer (``architecture: dynamic``): a variable number of tokens per image (LaVIT-style).

    tok = build_image_tokenizer(ImageTokenizerConfig.from_dict(read_mapping("configs/tokenizers/rgb_dynamic.yaml")))
    sets = tok.encode_sets(images)        # per image: (positions (n,), codes (n,)), n varies
    ids = tok.encode(images)              # (B, max_length) rows [pos][code] ... [EOS] [PAD] ...
    images = tok.decode(ids)              # or tok.decode_sets(sets)

Networks in :mod:`tokenizers_zoo.image.dynamic`, the id layout in
:mod:`tokenizers_zoo.image.dynamic_layout`. Training loss: reconstruction + quantiser +
``ratio_weight * (ratio target - kept fraction of the batch)^2``. The ratio is taken over the whole
batch (LaVIT writes it per image), so busy images may keep more patches than plain ones.

Schedule (``dynamic.keep_all_steps`` / ``ratio_ramp_steps``): every patch is kept for the first
steps (the codebook and decoder learn; the selector only learns ratio 1), then the ratio target
falls linearly from 1 to ``target_ratio`` (:meth:`DynamicImageTokenizer.ratio_target_at`). With
``dynamic.threshold_mode: quantile`` the inference threshold is an EMA of the (1 - ratio target)
quantile of the training keep probabilities (:meth:`DynamicImageTokenizer.update_threshold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from fourm.errors import FourmError
from tokenizers_zoo.image.config import ImageTokenizerConfig
from tokenizers_zoo.image.dynamic import (
    DynamicDecoder,
    DynamicEncoder,
    TokenMerger,
    TokenSelector,
    ensure_one_kept,
    gumbel_keep,
    top_k_mask,
)
from tokenizers_zoo.image.dynamic_layout import DynamicTokenLayout
from tokenizers_zoo.image.losses import reconstruction_loss
from tokenizers_zoo.image.tokenizer import ImageTokenizer, register_architecture
from tokenizers_zoo.quantizers import QuantizerOutput, build_quantizer


@dataclass
class DynamicForward:
    """One forward pass: decoder output, quantiser output (over kept tokens), decisions."""

    output: Tensor  # (B, C_out, H, W) (logits for semseg / edges)
    q: QuantizerOutput  # z_q (1, D, n_kept), indices (1, n_kept)
    keep: Tensor  # (B, N) 0/1 (straight-through in training)
    keep_prob: Tensor  # (B, N) keep probability (training: of the Gumbel-perturbed sample)
    indices: Tensor  # (B, N) long code per patch, -1 where dropped
    sampled_keep: Tensor  # (B, N) the selector's decisions (= keep, except all-ones keep in the warm-up)
    logits: Tensor  # (B, N, 2) the selector's [drop, keep] logits


@register_architecture("dynamic")
class DynamicImageTokenizer(ImageTokenizer):
    """Dynamic-length tokenizer; preprocessing, image checks and save/load as :class:`ImageTokenizer`."""

    def __init__(self, cfg: ImageTokenizerConfig):
        nn.Module.__init__(self)
        cfg.validate()
        if cfg.architecture != "dynamic":
            raise FourmError(f"DynamicImageTokenizer needs architecture 'dynamic', got '{cfg.architecture}'")
        self.cfg, self.modality, d = cfg, cfg.modality, cfg.dynamic
        grid = cfg.image_size // cfg.downsample
        conv = dict(width=cfg.width, channel_mult=cfg.channel_mult, num_res_blocks=cfg.num_res_blocks,
                    downsample=cfg.downsample)  # fmt: skip
        self.quantizer = build_quantizer(cfg.quantizer)
        self.encoder = DynamicEncoder(cfg.channels_in, d.token_width, grid, cfg.depth, cfg.num_heads, **conv)
        self.selector = TokenSelector(d.token_width)
        self.merger = TokenMerger(d.token_width, self.quantizer.dim, d.merger_depth, cfg.num_heads)
        self.decoder = DynamicDecoder(
            cfg.channels_out, self.quantizer.dim, d.token_width, grid, d.decoder_depth, cfg.num_heads, **conv
        )
        self.diffusion = None
        self.discriminator = None
        self._perceptual = {}
        self._auto_step = 0
        self.encoder_frozen = False  # ImageTokenizer.train() reads it; freezing is not supported here
        self.layout = DynamicTokenLayout(d.num_reserved, grid * grid, self.quantizer.codebook_size)
        # the inference threshold learned in training (threshold_mode quantile; saved only then, so
        # tokenizers saved before these buffers existed still load)
        quantile = d.threshold_mode == "quantile"
        self.register_buffer("keep_threshold", torch.tensor(float(d.threshold)), persistent=quantile)
        self.register_buffer("threshold_updates", torch.zeros((), dtype=torch.long), persistent=quantile)

    # ---- sizes -----------------------------------------------------------------------------------

    @property
    def num_patches(self) -> int:
        return self.layout.num_positions

    @property
    def num_tokens(self) -> int:
        """Most (position, code) pairs an image can get (``dynamic.max_tokens`` or every patch)."""
        return self.cfg.dynamic.max_tokens or self.num_patches

    @property
    def max_length(self) -> int:
        """Length of the rows :meth:`encode` returns: two ids per pair plus [EOS]."""
        return 2 * self.num_tokens + 1

    @property
    def vocab_size(self) -> int:
        return self.layout.vocab_size

    def token_codes(self, tokens: Tensor) -> Tensor:
        return self.layout.code_ids(tokens)

    def token_counts(self, tokens: Tensor) -> Tensor:
        return torch.tensor([len(self.layout.unpack(row)[0]) for row in tokens], dtype=torch.long)

    # ---- selection, merging, quantisation ------------------------------------------------------------

    def keep_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images -> (patch features (B, N, W), [drop, keep] logits (B, N, 2))."""
        self.check_images(images)
        h = self.encoder(self.network_input(images))
        return h, self.selector(h)

    @property
    def inference_threshold(self) -> float:
        """Keep probability above which a patch is kept at inference: the learned EMA quantile
        (``threshold_mode: quantile``) or ``dynamic.threshold``."""
        d = self.cfg.dynamic
        return float(self.keep_threshold) if d.threshold_mode == "quantile" else d.threshold

    def ratio_target_at(self, step: int) -> float:
        """Ratio target at training ``step``: 1 for ``keep_all_steps``, then linear from 1 down to
        ``target_ratio`` over ``ratio_ramp_steps``, then ``target_ratio``."""
        d = self.cfg.dynamic
        if step < d.keep_all_steps:
            return 1.0
        done = 1.0 if d.ratio_ramp_steps == 0 else min(1.0, (step - d.keep_all_steps) / d.ratio_ramp_steps)
        return 1.0 + (d.target_ratio - 1.0) * done

    @torch.no_grad()
    def update_threshold(self, keep_prob: Tensor, ratio: float) -> None:
        """One EMA step (decay ``dynamic.threshold_ema``; the first step copies) of ``keep_threshold``
        toward the (1 - ``ratio``) quantile of the keep probabilities ``keep_prob`` (B, N) of a batch."""
        q = torch.quantile(keep_prob.detach().float().flatten(), 1.0 - ratio)
        if int(self.threshold_updates) == 0:
            self.keep_threshold.copy_(q)
        else:
            decay = self.cfg.dynamic.threshold_ema
            self.keep_threshold.mul_(decay).add_(q * (1.0 - decay))
        self.threshold_updates += 1

    def select(
        self, logits: Tensor, top_k: int | None = None, threshold: float | None = None
    ) -> tuple[Tensor, Tensor]:
        """(keep (B, N), keep probability (B, N)) from logits. Training: Gumbel-softmax, hard straight-through.
        Eval: probability > ``threshold`` (default :attr:`inference_threshold`; at most
        ``dynamic.max_tokens``), or exactly the ``top_k`` most probable patches (a fixed budget).
        At least one patch is always kept."""
        d = self.cfg.dynamic
        if self.training and top_k is None:
            keep, prob = gumbel_keep(logits, d.gumbel_temperature)
        else:
            prob = logits.float().softmax(dim=-1)[..., 1]
            if top_k is not None:
                keep = top_k_mask(prob, top_k)
            else:
                keep = (prob > (self.inference_threshold if threshold is None else threshold)).float()
                if d.max_tokens is not None:
                    keep = keep * top_k_mask(prob, d.max_tokens)
        return ensure_one_kept(keep, prob.detach()), prob

    def _quantize_kept(self, z: Tensor, keep: Tensor) -> tuple[Tensor, QuantizerOutput, Tensor]:
        """Latents (B, N, D) -> (quantised (B, N, D), quantiser output over the kept ones, indices (B, N))."""
        kept = keep.detach() > 0.5
        q = self.quantizer(z[kept].t()[None])  # (1, D, n_kept): the codebook only sees kept tokens
        z_q = torch.zeros_like(z).masked_scatter(kept[..., None], q.z_q[0].t().contiguous().to(z.dtype))
        indices = torch.full(kept.shape, -1, dtype=torch.long, device=z.device)
        indices[kept] = q.indices[0].long()
        return z_q, q, indices

    def forward_dynamic(
        self, images: Tensor, top_k: int | None = None, keep_all: bool = False
    ) -> DynamicForward:
        """The full pass: select, merge, quantise the kept tokens, decode. ``keep_all``: every patch is
        kept whatever the selector decides (its decisions are still returned as ``sampled_keep``)."""
        h, logits = self.keep_logits(images)
        sampled, prob = self.select(logits, top_k)
        keep = torch.ones_like(sampled) if keep_all else sampled
        z = self.merger(h, keep)  # (B, N, D)
        z_q, q, indices = self._quantize_kept(z, keep)
        return DynamicForward(self.decoder(z_q, keep), q, keep, prob, indices, sampled, logits)

    def forward(self, images: Tensor) -> tuple[Tensor, QuantizerOutput]:
        f = self.forward_dynamic(images)
        return f.output, f.q

    def quantize(self, images: Tensor) -> QuantizerOutput:
        return self.forward_dynamic(images).q

    def decode_latents(self, z_q: Tensor) -> Tensor:
        raise FourmError("a dynamic tokenizer decodes token sets: use decode(tokens) or decode_sets(sets)")

    # ---- tokenizer API ---------------------------------------------------------------------------

    @torch.no_grad()
    def encode_sets(
        self, images: Tensor, top_k: int | None = None, threshold: float | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """Images -> per image (positions (n,) ascending, codes (n,)) long on the CPU; n varies.
        ``top_k``: keep exactly the k most probable patches instead of thresholding; ``threshold``:
        instead of :attr:`inference_threshold`."""
        was_training = self.training
        self.eval()
        try:
            h, logits = self.keep_logits(images)
            keep, _ = self.select(logits, top_k, threshold)
            _, _, indices = self._quantize_kept(self.merger(h, keep), keep)
        finally:
            self.train(was_training)
        indices = indices.cpu()
        sets = []
        for row in indices:
            positions = torch.nonzero(row >= 0).flatten()
            sets.append((positions, row[positions]))
        return sets

    @torch.no_grad()
    def encode(self, images: Tensor, top_k: int | None = None) -> Tensor:
        """Images -> (B, max_length) ids: [pos][code] pairs by position, [EOS], [PAD] (dynamic_layout.py)."""
        return self.layout.pack_batch(self.encode_sets(images, top_k), self.max_length).to(images.device)

    @torch.no_grad()
    def decode_sets(self, sets: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Per image (positions (n,), codes (n,)) -> images (model convention). An empty set decodes
        from mask tokens only."""
        n, device = self.num_patches, self.device
        keep = torch.zeros(len(sets), n, device=device)
        indices = torch.zeros(len(sets), n, dtype=torch.long, device=device)
        for row, (positions, codes) in enumerate(sets):
            positions, codes = torch.as_tensor(positions).long(), torch.as_tensor(codes).long()
            if positions.shape != codes.shape or positions.dim() != 1:
                raise FourmError(f"image {row}: positions and codes must be 1D of one length")
            if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= n):
                raise FourmError(f"image {row}: position out of range (expected 0..{n - 1})")
            keep[row, positions.to(device)] = 1.0
            indices[row, positions.to(device)] = codes.to(device)
        kept = keep > 0.5
        z_q = torch.zeros(len(sets), n, self.quantizer.dim, device=device)
        if bool(kept.any()):
            latents = self.quantizer.indices_to_latents(indices[kept][None])  # (1, D, n_kept)
            z_q = z_q.masked_scatter(kept[..., None], latents[0].t().contiguous().float())
        return self.output_to_images(self.decoder(z_q, keep))

    @torch.no_grad()
    def decode(
        self, tokens: Tensor, steps: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Ids (B, L) in the layout of :meth:`encode` (read leniently, see DynamicTokenLayout.unpack) -> images."""
        if tokens.dim() != 2 or tokens.dtype.is_floating_point:
            raise FourmError(
                f"expected integer token rows of shape (B, L), got {tuple(tokens.shape)} {tokens.dtype}"
            )
        return self.decode_sets([self.layout.unpack(row) for row in tokens.cpu()])

    # ---- loss ------------------------------------------------------------------------------------

    def ratio_loss(self, keep: Tensor, target: float | None = None) -> Tensor:
        """(target - kept fraction of the batch)^2 for keep decisions (B, N) (unweighted, fp32);
        ``target`` defaults to ``dynamic.target_ratio``."""
        target = self.cfg.dynamic.target_ratio if target is None else target
        return (target - keep.float().mean()) ** 2

    def loss(
        self, batch: Tensor | dict[str, Any], step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Reconstruction + quantiser + ratio loss (fp32 scalar) and detached logs. ``step`` (for the
        keep-all warm-up and ratio ramp) defaults to a counter advanced by every training-mode call."""
        images = batch[self.modality] if isinstance(batch, dict) else batch
        if step is None:
            step = self._auto_step
            if self.training:
                self._auto_step += 1
        cfg, d = self.cfg, self.cfg.dynamic
        target = self.ratio_target_at(step) if self.training else d.target_ratio
        keep_all = self.training and step < d.keep_all_steps
        if self.training and d.kmeans_after_keep_all and step == d.keep_all_steps:
            self.quantizer.initialized.fill_(False)  # the next quantiser call re-runs k-means on this batch
        f = self.forward_dynamic(images, keep_all=keep_all)
        rec = reconstruction_loss(
            self.modality, f.output, images, cfg.loss.recon, cfg.loss.edge_pos_weight, cfg.loss.detail_weight
        )
        kept_fraction = f.keep.float().mean()
        ratio = self.ratio_loss(f.sampled_keep, target)  # in the warm-up: moves the selector toward 1
        if self.training and d.threshold_mode == "quantile" and not keep_all:
            self.update_threshold(f.logits.float().softmax(dim=-1)[..., 1], target)
        total = (
            cfg.loss.recon_weight * rec
            + cfg.loss.quantizer_weight * f.q.loss.float()
            + d.ratio_weight * ratio
        )
        logs = {
            "recon": float(rec.detach()),
            "quantizer": float(f.q.loss.detach()),
            "ratio": float(ratio.detach()),
            "kept_fraction": float(kept_fraction.detach()),
            "selected_fraction": float(
                f.sampled_keep.detach().float().mean()
            ),  # the selector's (warm-up: not used)
            "ratio_target": target,
            "keep_threshold": self.inference_threshold,
        }
        for name, value in f.q.metrics.items():
            logs[f"q_{name}"] = float(value)
        logs["loss"] = float(total.detach())
        return total, logs
