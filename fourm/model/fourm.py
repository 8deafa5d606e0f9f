"""FourM: the any-to-any encoder-decoder transformer over packed multimodal token rows.

The encoder reads the visible tokens of all input modalities; the decoder predicts target tokens,
each attending within its own modality (bidirectionally for images/vectors, causally for sequences)
and to every valid encoder token. Logits are computed only for valid decoder tokens, with one
matmul per target modality against that modality's head. Continuous modalities
(:mod:`fourm.model.continuous`) are read from ``enc_values`` and their targets predicted by a value
head (regression or diffusion) from ``dec_values``; their loss joins the per-modality mean.

Usage::

    model = FourM(FourMConfig.from_registry(default_registry(), "tiny"))
    loss, per_modality = model.loss(batch)       # batch: fourm.core.batch.MultimodalBatch
    logits = model(batch)                         # {"rgb": (n_rgb, V_rgb), ...}
    model.save_pretrained("runs/x/model"); FourM.from_pretrained("runs/x/model")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.core.batch import MultimodalBatch
from fourm.errors import FourmError
from fourm.model.attention import KV
from fourm.model.batch_checks import ModalityLimits, check_ranges, check_shapes
from fourm.model.blocks import DecoderBlock, EncoderBlock
from fourm.model.config import FourMConfig
from fourm.model.continuous import value_heads
from fourm.model.embeddings import PackedEmbeddings
from fourm.model.files import CONFIG_NAME, WEIGHTS_NAME
from fourm.model.files import is_ml4m_config as _is_ml4m_config
from fourm.model.linear import linear
from fourm.model.masks import cross_attention_mask, decoder_attention_mask, encoder_attention_mask
from fourm.model.ml4m import load_converted_state, read_ml4m
from fourm.model.norm import build_norm
from fourm.utils.atomic import atomic_path
from fourm.utils.weights import check_shapes as check_weight_shapes
from fourm.utils.weights import read_safetensors, safetensors_shapes


@dataclass
class DecoderCache:
    """Keys/values kept between decoder calls.

    ``cross_kv``: per decoder block, the cross-attention keys/values of the context (computed once,
    e.g. reused over the steps of a parallel sampler). ``self_kv`` and ``modality/position/valid``
    (B, Nk): self-attention keys/values and token metadata of the tokens decoded so far
    (autoregressive decoding with ``decode(..., cache=c, update_cache=True)``).
    """

    context_valid: Tensor  # (B, Ne) bool
    cross_kv: list[KV]
    self_kv: list[KV] | None = None
    modality: Tensor | None = None
    position: Tensor | None = None
    valid: Tensor | None = None


def padded_rows(n: int) -> int:
    """``n`` rounded up to a multiple of 64 (below 1024) or of 1/16 of its power of two above."""
    step = max(64, 1 << max(0, n.bit_length() - 5))
    return -(-n // step) * step


class FourM(nn.Module):
    """Encoder-decoder over packed multimodal tokens; see the module docstring."""

    def __init__(self, config: FourMConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.modality_names = config.modality_names
        mods = list(config.modalities.values())
        block_args = dict(
            num_heads=config.num_heads,
            mlp_hidden=config.mlp_hidden,
            qk_norm=config.qk_norm,
            norm=config.norm,
            dropout=config.dropout,
            eps=config.norm_eps,
        )
        self.embeddings = PackedEmbeddings(config)
        self.encoder = nn.ModuleList([EncoderBlock(config.dim, **block_args) for _ in range(config.enc_depth)])
        self.enc_norm = build_norm(config.norm, config.dim, config.norm_eps)
        self.decoder = nn.ModuleList(
            [DecoderBlock(config.dim, **block_args, context_norm=config.context_norm) for _ in range(config.dec_depth)]
        )
        if config.context_projection:  # decoder context = proj(encoder output) + position/modality embeddings
            self.context_proj = nn.Linear(config.dim, config.dim)
            nn.init.xavier_uniform_(self.context_proj.weight)
            nn.init.zeros_(self.context_proj.bias)
        else:
            self.context_proj = None
        self.dec_norm = build_norm(config.norm, config.dim, config.norm_eps)

        # target_names: the token (softmax) targets; value_names: the continuous targets (value heads)
        self.target_names = [name for name, m in config.modalities.items() if m.target and not m.is_continuous]
        self.value_names = [name for name, m in config.modalities.items() if m.target and m.is_continuous]
        self.value_heads = value_heads(config)  # None without continuous targets (state dict unchanged)
        head_sizes = [m.vocab_size if m.target and not m.is_continuous else 0 for m in mods]
        self._head_sizes = head_sizes
        if config.tie_embeddings:
            self.output_weight = None
        else:  # all untied heads in one (sum V_target, D) table
            self.output_weight = nn.Parameter(torch.empty(sum(head_sizes), config.dim))
            nn.init.normal_(self.output_weight, std=config.init_std)

        for name, values in (
            ("_vocab_sizes", [m.vocab_size for m in mods]),
            ("_num_positions", [m.num_positions for m in mods]),
            ("_is_input", [m.input for m in mods]),
            ("_is_target", [m.target for m in mods]),
        ):
            self.register_buffer(name, torch.tensor(values), persistent=False)
        self.check_inputs = True  # validate ids/positions/modalities of every batch (one host sync)

    # ------------------------------------------------------------------------------ checks
    def _check_encoder(
        self, tokens: Tensor, modality: Tensor, position: Tensor, valid: Tensor, patches: Tensor | None = None,
        values: Tensor | None = None,
    ) -> None:
        rows = {"enc_tokens": tokens, "enc_modality": modality, "enc_position": position, "enc_valid": valid}
        check_shapes("encoder", rows)
        if self.check_inputs:
            check_ranges("enc", rows, ["enc_tokens"], self._limits(self._is_input))
        width = self.config.patch_width
        if patches is not None:
            if not width:
                raise FourmError("enc_patches given, but the model has no patch modality (patch_dim > 0)")
            if patches.shape[:2] != tokens.shape or patches.dim() != 3 or patches.shape[2] < width:
                raise FourmError(
                    f"enc_patches must be (B, Ne, >= {width}) for encoder rows {tuple(tokens.shape)}, "
                    f"got {tuple(patches.shape)}"
                )
        elif width and self.check_inputs and bool((valid & self.embeddings.is_patch[modality.clamp(0, len(self.modality_names) - 1)]).any()):
            names = ", ".join(self.embeddings.patch_index)
            raise FourmError(f"the encoder rows hold patch-modality tokens ({names}) but enc_patches is None")
        self._check_values("enc", modality, valid, values, list(self.embeddings.value_index))

    def _check_values(self, side: str, modality: Tensor, valid: Tensor, values: Tensor | None, names: list[str]) -> None:
        """``{side}_values`` (B, N, >= C) float when rows of continuous modalities ``names`` are valid."""
        width = self.config.value_width
        if values is not None:
            if not width:
                raise FourmError(f"{side}_values given, but the model has no continuous modality (value_dim > 0)")
            if values.dim() != 3 or values.shape[:2] != modality.shape or values.shape[2] < width:
                raise FourmError(
                    f"{side}_values must be (B, N, >= {width}) for rows {tuple(modality.shape)}, got {tuple(values.shape)}"
                )
            if not values.dtype.is_floating_point:
                raise FourmError(f"{side}_values must be a float tensor, got {values.dtype}")
        elif names and self.check_inputs:
            index = torch.tensor([self.config.modality_index(n) for n in names], device=modality.device)
            if bool((valid & torch.isin(modality, index)).any()):
                raise FourmError(f"the {side} rows hold continuous-modality tokens ({', '.join(names)}) but {side}_values is None")

    def _check_decoder(self, rows: dict[str, Tensor], ids: list[str]) -> None:
        check_shapes("decoder", rows)
        if self.check_inputs:
            check_ranges("dec", rows, ids, self._limits(self._is_target))

    def _limits(self, role: Tensor) -> ModalityLimits:
        return ModalityLimits(self.modality_names, self._vocab_sizes, self._num_positions, role, self.embeddings.causal)

    def check_batch(self, batch: MultimodalBatch) -> None:
        """Raise FourmError if the batch does not fit this model (shapes, dtypes, ranges, roles)."""
        self._check_encoder(
            batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches, batch.enc_values
        )
        self._check_values("dec", batch.dec_modality, batch.dec_valid, batch.dec_values, self.value_names)
        rows = {
            "dec_input": batch.dec_input,
            "dec_target": batch.dec_target,
            "dec_modality": batch.dec_modality,
            "dec_position": batch.dec_position,
            "dec_valid": batch.dec_valid,
        }
        self._check_decoder(rows, ["dec_input", "dec_target"])
        if batch.enc_tokens.shape[0] != batch.dec_input.shape[0]:
            raise FourmError(f"encoder batch size {batch.enc_tokens.shape[0]} != decoder batch size {batch.dec_input.shape[0]}")

    # ------------------------------------------------------------------------------ encoder
    def _encode(
        self,
        tokens: Tensor,
        modality: Tensor,
        position: Tensor,
        valid: Tensor,
        patches: Tensor | None = None,
        decoder_context: bool = True,
        values: Tensor | None = None,
    ) -> Tensor:
        tok, emb = self.embeddings.encoder_parts(tokens, modality, position, valid, patches, values)  # (B, Ne, D) each
        x = tok + emb
        mask = encoder_attention_mask(valid)  # (B, 1, Ne, Ne)
        for block in self.encoder:
            x = block(x, mask)
        x = self.enc_norm(x)
        if decoder_context and self.context_proj is not None:
            x = self.context_proj(x) + emb
        return x.masked_fill(~valid[..., None], 0.0)

    def encode(
        self,
        tokens: Tensor,
        modality: Tensor,
        position: Tensor,
        valid: Tensor,
        patches: Tensor | None = None,
        decoder_context: bool = True,
        values: Tensor | None = None,
    ) -> Tensor:
        """The decoder's context (B, Ne, D) for packed input tokens (B, Ne); padding rows are 0.
        ``patches`` (B, Ne, P) holds the pixel patches of patch-modality slots (needed when there
        are any). This is the encoder output, except with ``config.context_projection``, where it is
        ``context_proj(encoder output) + position/modality embeddings``; ``decoder_context=False``
        then gives the encoder output itself (e.g. for retrieval embeddings). ``values`` (B, Ne, C)
        holds the float values of continuous-modality slots (needed when there are any)."""
        self._check_encoder(tokens, modality, position, valid, patches, values)
        return self._encode(tokens, modality, position, valid, patches, decoder_context, values)

    # ------------------------------------------------------------------------------ decoder
    def start_cache(self, context: Tensor, context_valid: Tensor) -> DecoderCache:
        """Precompute the cross-attention keys/values of an encoder output (B, Ne, D)."""
        context = context.masked_fill(~context_valid[..., None], 0.0)
        return DecoderCache(context_valid, [block.project_context(context) for block in self.decoder])

    def _decode(
        self,
        context: Tensor | None,
        context_valid: Tensor | None,
        dec_input: Tensor,
        dec_modality: Tensor,
        dec_position: Tensor,
        dec_valid: Tensor,
        cache: DecoderCache | None = None,
        update_cache: bool = False,
    ) -> Tensor:
        x = self.embeddings.decoder_input(dec_input, dec_modality, dec_position, dec_valid)  # (B, Nd, D)
        causal = self.embeddings.causal
        if cache is not None and cache.self_kv is not None:
            key_modality = torch.cat([cache.modality, dec_modality], dim=1)
            key_position = torch.cat([cache.position, dec_position], dim=1)
            key_valid = torch.cat([cache.valid, dec_valid], dim=1)
            self_mask = decoder_attention_mask(
                dec_modality, dec_position, dec_valid, causal, key_modality, key_position, key_valid
            )
        else:
            key_modality, key_position, key_valid = dec_modality, dec_position, dec_valid
            self_mask = decoder_attention_mask(dec_modality, dec_position, dec_valid, causal)  # (B, 1, Nd, Nd)
        if cache is None:
            if context is None or context_valid is None:
                raise FourmError("decode needs context and context_valid (or a cache from start_cache)")
            context = context.masked_fill(~context_valid[..., None], 0.0)  # padding -> zero keys/values
        else:
            context_valid = cache.context_valid
        cross_mask = cross_attention_mask(context_valid)  # (B, 1, 1, Ne)
        if update_cache and cache is None:
            raise FourmError("update_cache=True needs a cache (see start_cache)")
        new_self_kv = []
        for i, block in enumerate(self.decoder):
            past = cache.self_kv[i] if cache is not None and cache.self_kv is not None else None
            cross_kv = cache.cross_kv[i] if cache is not None else None
            if update_cache:
                x, (self_kv, _) = block(x, context, self_mask, cross_mask, past, cross_kv, use_cache=True)
                new_self_kv.append(self_kv)
            else:
                x = block(x, context, self_mask, cross_mask, past, cross_kv)
        if update_cache:
            cache.self_kv, cache.modality, cache.position, cache.valid = new_self_kv, key_modality, key_position, key_valid
        return self.dec_norm(x)

    def decode(
        self,
        context: Tensor | None,  # (B, Ne, D) encoder output, or None with a cache
        context_valid: Tensor | None,  # (B, Ne) bool
        dec_input: Tensor,  # (B, Nd) previous token (sequences; ignored for image/vector)
        dec_modality: Tensor,  # (B, Nd)
        dec_position: Tensor,  # (B, Nd)
        dec_valid: Tensor,  # (B, Nd)
        cache: DecoderCache | None = None,
        update_cache: bool = False,
    ) -> Tensor:
        """Decoder output (B, Nd, D) after the final norm. With a ``cache`` the cross-attention
        keys/values (and any earlier decoded tokens) come from it; ``update_cache`` appends these
        tokens to it (autoregressive decoding)."""
        rows = {"dec_input": dec_input, "dec_modality": dec_modality, "dec_position": dec_position, "dec_valid": dec_valid}
        self._check_decoder(rows, ["dec_input"])
        return self._decode(context, context_valid, dec_input, dec_modality, dec_position, dec_valid, cache, update_cache)

    # ------------------------------------------------------------------------------ heads
    def head_weights(self) -> dict[str, Tensor]:
        """Output projections {name: (V_m, D)} of the target modalities (one split per table, so
        backward builds one gradient per table)."""
        indices = [self.config.modality_index(name) for name in self.target_names]
        if self.output_weight is None:
            weights = self.embeddings.output_embeddings(indices)
            scale = self.tied_head_scale
            if scale != 1.0:
                weights = [w * scale for w in weights]
        else:
            chunks = self.output_weight.split(self._head_sizes)
            weights = [chunks[i] for i in indices]
        return dict(zip(self.target_names, weights))

    @property
    def tied_head_scale(self) -> float:
        """A tied head's factor on its token rows: ``init_std / token_init_std``, so logits start as an
        untied head's (rows at ``init_std``) however large the token rows start; 1 without token_init_std."""
        cfg = self.config
        return 1.0 if cfg.token_init_std is None else cfg.init_std / cfg.token_init_std

    def head_weight(self, name: str) -> Tensor:
        """Output projection (V_m, D) of target modality ``name``."""
        self.config.modality_index(name)
        if name not in self.target_names:
            raise FourmError(f"modality '{name}' is not a target (target: false), it has no output head")
        return self.head_weights()[name]

    def token_groups(self, modality: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """Flat indices into (B * N) of the valid tokens of each modality present, row-major order."""
        num = len(self.modality_names)
        key = torch.where(valid, modality, num).reshape(-1)
        order = torch.argsort(key, stable=True)
        counts = torch.bincount(key, minlength=num + 1).tolist()  # one host sync
        chunks = order.split(counts)
        return {self.modality_names[i]: chunks[i] for i in range(num) if counts[i] > 0}

    def _group_logits(self, flat_hidden: Tensor, groups: dict[str, Tensor]) -> dict[str, Tensor]:
        """{name: (n_padded, V_m)} logits of each group's rows of ``flat_hidden`` (B * Nd, D).

        Row counts are padded up to a bucket (:func:`padded_rows`, extra rows repeat row 0) so the
        matmul kernels see few distinct shapes (oneDNN builds a kernel per shape)."""
        weights = self.head_weights()
        out = {}
        for name, index in groups.items():
            n = index.numel()
            index = F.pad(index, (0, padded_rows(n) - n))
            out[name] = linear(flat_hidden[index], weights[name])
        return out

    def logits(self, hidden: Tensor, modality: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """Decoder output (B, Nd, D) -> {name: (n_m, V_m)} for the valid tokens of each modality
        (in row-major order of (B, Nd), as :meth:`token_groups`)."""
        groups = {k: v for k, v in self.token_groups(modality, valid).items() if k not in self.value_names}
        padded = self._group_logits(hidden.reshape(-1, hidden.shape[-1]), groups)
        return {name: padded[name][: groups[name].numel()] for name in groups}

    def predict_values(self, hidden: Tensor, modality: Tensor, valid: Tensor, **head_args) -> dict[str, Tensor]:
        """Decoder output (B, Nd, D) -> {name: (n_m, C_m)} values of the valid tokens of each continuous
        target (row-major order); ``head_args`` go to the heads (diffusion: ``steps``, ``generator``)."""
        groups = self.token_groups(modality, valid)
        flat = hidden.reshape(-1, hidden.shape[-1])
        return {n: self.value_heads[n].predict(flat[groups[n]], **head_args) for n in self.value_names if n in groups}

    # ------------------------------------------------------------------------------ training
    def _hidden(self, batch: MultimodalBatch) -> Tensor:
        self.check_batch(batch)
        context = self._encode(
            batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches,
            values=batch.enc_values,
        )
        return self._decode(
            context, batch.enc_valid, batch.dec_input, batch.dec_modality, batch.dec_position, batch.dec_valid
        )

    def forward(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """{modality name: logits (n_m, V_m)} for the valid decoder tokens of each target modality."""
        return self.logits(self._hidden(batch), batch.dec_modality, batch.dec_valid)

    def loss(self, batch: MultimodalBatch) -> tuple[Tensor, dict[str, float]]:
        """Mean over the target modalities present of each one's mean token cross-entropy (fp32) or,
        for a continuous modality, its value head's loss; and the per-modality values as floats."""
        hidden = self._hidden(batch).reshape(-1, self.config.dim)  # (B * Nd, D)
        targets = batch.dec_target.reshape(-1)
        groups = self.token_groups(batch.dec_modality, batch.dec_valid)
        if not groups:
            raise FourmError("batch has no valid decoder tokens (dec_valid is all false): nothing to predict")
        token_groups = {k: v for k, v in groups.items() if k not in self.value_names}
        logits = self._group_logits(hidden, token_groups)
        losses = []
        for name, index in groups.items():
            if name in self.value_names:
                value = batch.dec_values.reshape(-1, batch.dec_values.shape[-1])[index]
                losses.append(self.value_heads[name].loss(hidden[index], value[:, : self.config.modalities[name].value_dim]))
                continue
            target = F.pad(targets[index], (0, logits[name].shape[0] - index.numel()), value=-100)
            losses.append(F.cross_entropy(logits[name].float(), target, ignore_index=-100))  # padded rows ignored
        losses = torch.stack(losses)
        return losses.mean(), dict(zip(groups, losses.detach().tolist()))

    # ------------------------------------------------------------------------------ info
    def num_parameters(self, breakdown: bool = False) -> int | dict[str, int]:
        """Total number of parameters, or {encoder, decoder, trunk, embeddings, heads, total}."""
        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        encoder = sum(count(m) for m in (self.encoder, self.enc_norm))
        decoder = sum(count(m) for m in (self.decoder, self.dec_norm))
        if self.context_proj is not None:
            decoder += count(self.context_proj)
        heads = 0 if self.output_weight is None else self.output_weight.numel()
        if self.value_heads is not None:
            heads += count(self.value_heads)
        parts = {
            "encoder": encoder,
            "decoder": decoder,
            "trunk": encoder + decoder,
            "embeddings": count(self.embeddings),
            "heads": heads,
            "total": sum(p.numel() for p in self.parameters()),
        }
        return parts if breakdown else parts["total"]

    def summary(self) -> str:
        """A few lines: architecture, modalities and parameter counts."""
        c, n = self.config, self.num_parameters(breakdown=True)
        lines = [
            f"FourM dim={c.dim} depth={c.enc_depth}+{c.dec_depth} heads={c.num_heads} mlp_hidden={c.mlp_hidden} "
            f"norm={c.norm} qk_norm={c.qk_norm} tie_embeddings={c.tie_embeddings} "
            f"share_encoder_decoder_embeddings={c.share_encoder_decoder_embeddings}"
            + (" share_modality_embeddings=True" if c.share_modality_embeddings else "")
            + (" context_projection=True" if c.context_projection else "")
            + (" context_norm=True" if c.context_norm else ""),
            "modalities: " + ", ".join(f"{k}({m.kind}, V={m.vocab_size}, L={m.length})" for k, m in c.modalities.items()),
        ]
        for key in ("trunk", "encoder", "decoder", "embeddings", "heads", "total"):
            lines.append(f"  {key:<11}{n[key]:>14,} params ({n[key] / 1e6:.2f} M)")
        return "\n".join(lines)

    # ------------------------------------------------------------------------------ save / load
    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into directory ``path`` (each atomically)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(path / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        self.config.save_json(path / CONFIG_NAME)

    @classmethod
    def check_saved(cls, path: str | Path) -> FourMConfig:
        """The config of the model saved in ``path``, after checking the weights' names and shapes
        (read from the safetensors header) against it, without building the model or reading the
        weights: a wrong or hostile ``config.json`` (``dim: 65536``) fails here, allocating nothing.
        FourmError for missing, corrupt or mismatched files."""
        path = Path(path)
        if not path.is_dir():
            raise FourmError(f"model directory not found: {path}")
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / name).is_file():
                raise FourmError(f"{path} is not a saved FourM model: {name} is missing")
        config = FourMConfig.from_file(path / CONFIG_NAME)
        # Check the weights' shapes (from the safetensors header) against the config's before
        # allocating anything: a wrong or hostile config.json must not build a huge model first.
        shapes = safetensors_shapes(path / WEIGHTS_NAME)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
        check_weight_shapes(shapes, expected, f"{path / WEIGHTS_NAME} does not match {path / CONFIG_NAME}")
        return config

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> FourM:
        """Load a model saved by :meth:`save_pretrained`; FourmError for missing, corrupt or
        mismatched files (checked by :meth:`check_saved` before anything is allocated).

        A directory of a released ml-4m model (its ``config.json`` has ``domains_in``) is converted
        on the fly (:func:`fourm.model.ml4m.read_ml4m`, as :func:`fourm.convert.ml4m.load_ml4m`; in eval mode)."""
        path = Path(path)
        if (path / CONFIG_NAME).is_file() and _is_ml4m_config(path / CONFIG_NAME):
            path, config, state, _ = read_ml4m(path)
            model = load_converted_state(FourM(config), state, path)
            return model.to(device) if device is not None else model
        config = cls.check_saved(path)
        state = read_safetensors(path / WEIGHTS_NAME)
        model = cls(config)
        model.load_state_dict(state)
        return model.to(device) if device is not None else model
