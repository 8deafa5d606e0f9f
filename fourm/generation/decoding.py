"""Model calls of the samplers: target logits from condition rows, for parallel and sequential decoding.

Both decoders take the guidance passes as encoder rows stacked on the batch, (P * B, Ne), with
their mixing coefficients (see :mod:`fourm.generation.guidance`), and return mixed fp32 logits
(B, n, V) of one target modality.

* :class:`ParallelDecoder` (MaskGIT / ROAR, image and vector targets): each call appends the
  target's known tokens to the encoder rows, encodes, and decodes the queried positions.
* :class:`SequenceDecoder` (autoregressive, sequence targets): encodes once; with ``use_cache``
  the cross-attention keys/values are projected once and the self-attention keys/values of earlier
  tokens are kept in preallocated buffers (:class:`KVCacheDecoder`), so each call only runs the new
  tokens. Without it every call re-decodes the whole prefix through ``FourM.decode`` with freshly
  projected cross-attention keys/values (the reference path).

:class:`KVCacheDecoder` runs the model's decoder blocks (their weights and norms) step by step
with the least work per token: at batch 1 a step is a chain of matrix-vector products whose time
is reading the weights, so fp32 products go through oneDNN (multi-threaded; aten's fp32 GEMV is
single-threaded here), under autocast the weights are cast once per sequence, not per call, and
attention over a few queries uses SDPA (half the time of the explicit form the model uses on the
CPU for training).
Its outputs match ``FourM.decode`` (tests compare the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fourm.errors import FourmError
from fourm.generation.conditions import EncoderInputs, GivenTokens
from fourm.generation.guidance import combine_passes
from fourm.model.fourm import FourM
from fourm.model.linear import linear, onednn_linear_available
from fourm.model.masks import cross_attention_mask


class TargetHead:
    """Output projection of one target modality: hidden (B, n, D) -> logits (B, n, V) in fp32.

    Under autocast the weight is cast to the autocast dtype once and kept (the model's head is a
    slice of a larger table, which autocast would otherwise cast again on every call)."""

    def __init__(self, model: FourM, name: str) -> None:
        self.weight = model.head_weight(name).detach()  # (V, D)
        self._cast: dict[torch.dtype, Tensor] = {}

    def __call__(self, hidden: Tensor) -> Tensor:
        device_type = hidden.device.type
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
            if dtype not in self._cast:
                self._cast[dtype] = self.weight.to(dtype)
            return F.linear(hidden.to(dtype), self._cast[dtype]).float()
        return linear(hidden, self.weight).float()


def _matvec(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T`` for few rows x (..., in), weight (out, in): oneDNN for fp32 on the CPU."""
    if (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and onednn_linear_available()
    ):
        out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), weight, None, "none", [], "")
        return out.reshape(*x.shape[:-1], weight.shape[0])
    return F.linear(x, weight)


class KVCacheDecoder:
    """Incremental decoding of one causal (sequence) modality over a fixed context.

    Cross-attention keys/values of the context are projected once; self-attention keys/values of
    the decoded tokens go into buffers of ``max_length`` slots. Each call takes the next k tokens.
    Inference only: dropout is not applied.
    """

    def __init__(self, model: FourM, context: Tensor, context_valid: Tensor, max_length: int) -> None:
        device_type = context.device.type
        amp = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
        self.model, self.max_length, self.length = model, max_length, 0
        self.num_heads = model.config.num_heads
        self.head_dim = model.config.dim // self.num_heads

        def weight(linear_module: torch.nn.Module) -> Tensor:
            w = linear_module.weight.detach()
            return w.to(amp) if amp is not None else w

        self.weights = [
            {
                "qkv": weight(b.self_attn.qkv),
                "self_proj": weight(b.self_attn.proj),
                "q": weight(b.cross_attn.q),
                "cross_proj": weight(b.cross_attn.proj),
                "gate_up": weight(b.mlp.gate_up),
                "down": weight(b.mlp.down),
            }
            for b in model.decoder
        ]
        context = context.masked_fill(~context_valid[..., None], 0.0)
        # attention of a few queries runs in fp32 (cheap; CPU SDPA is several times slower in bf16)
        self.cross_kv = [tuple(t.float() for t in block.project_context(context)) for block in model.decoder]
        self.cross_mask = None if bool(context_valid.all()) else cross_attention_mask(context_valid)
        self.self_k: list[Tensor] = []
        self.self_v: list[Tensor] = []

    def _heads(self, t: Tensor, parts: int) -> tuple[Tensor, ...]:
        """(B, k, parts * D) -> ``parts`` tensors (B, H, k, hd)."""
        b, k, _ = t.shape
        return t.view(b, k, parts, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def _merge(self, t: Tensor) -> Tensor:
        """(B, H, k, hd) -> (B, k, D)."""
        b, _, k, _ = t.shape
        return t.transpose(1, 2).reshape(b, k, self.num_heads * self.head_dim)

    def __call__(self, inputs: Tensor, modality: Tensor, positions: Tensor) -> Tensor:
        """Next tokens' decoder inputs / modality / positions (B, k) -> decoder output (B, k, D)."""
        b, k = inputs.shape
        start, end = self.length, self.length + k
        if end > self.max_length:
            raise FourmError(f"decoding past the cache length {self.max_length}")
        valid = torch.ones_like(inputs, dtype=torch.bool)
        x = self.model.embeddings.decoder_input(inputs, modality, positions, valid)  # (B, k, D)
        causal = None
        if k > 1:  # new tokens see the cached ones and, causally, each other
            causal = torch.ones(k, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
        for i, block in enumerate(self.model.decoder):
            w, sa, ca = self.weights[i], block.self_attn, block.cross_attn
            q, key, value = self._heads(_matvec(block.norm1(x), w["qkv"]), 3)
            key = sa.k_norm(key)
            if len(self.self_k) <= i:  # first call: allocate the buffers
                shape = (b, self.num_heads, self.max_length, self.head_dim)
                self.self_k.append(key.new_zeros(shape, dtype=torch.float32))  # (B, H, max_length, hd)
                self.self_v.append(value.new_zeros(shape, dtype=torch.float32))
            self.self_k[i][:, :, start:end] = key
            self.self_v[i][:, :, start:end] = value
            with torch.autocast(x.device.type, enabled=False):
                out = F.scaled_dot_product_attention(
                    sa.q_norm(q).float(), self.self_k[i][:, :, :end], self.self_v[i][:, :, :end], attn_mask=causal
                )
            x = x + _matvec(self._merge(out), w["self_proj"])
            (q,) = self._heads(_matvec(block.norm2(x), w["q"]), 1)
            with torch.autocast(x.device.type, enabled=False):
                out = F.scaled_dot_product_attention(ca.q_norm(q).float(), *self.cross_kv[i], attn_mask=self.cross_mask)
            x = x + _matvec(self._merge(out), w["cross_proj"])
            gate, up = _matvec(block.norm3(x), w["gate_up"]).chunk(2, dim=-1)
            x = x + _matvec(F.silu(gate) * up, w["down"])
        self.length = end
        return self.model.dec_norm(x)


class _GuidedDecoder:
    """Shared part of the decoders: target checks, guidance passes (P * B rows), the output head."""

    def __init__(self, model: FourM, target: str, passes: EncoderInputs, coefficients: Sequence[float]) -> None:
        config = model.config
        self.index = config.modality_index(target)
        if target not in model.target_names:
            raise FourmError(f"modality '{target}' is not a target (target: false), it cannot be generated")
        self.model, self.target, self.modality = model, target, config.modalities[target]
        self.coefficients = [float(c) for c in coefficients]
        self.num_passes = len(self.coefficients)
        if passes.batch_size % self.num_passes:
            raise FourmError(f"{passes.batch_size} encoder rows cannot be split into {self.num_passes} passes")
        self.passes = passes.compact()
        self.batch_size = passes.batch_size // self.num_passes
        self.head = TargetHead(model, target)

    def _rows(self, t: Tensor) -> Tensor:
        """(B, n) -> (P * B, n), one copy per pass."""
        return t if self.num_passes == 1 else t.repeat(self.num_passes, 1)

    def _mix(self, hidden: Tensor) -> Tensor:
        return combine_passes(self.head(hidden), self.coefficients)


def restrict_to_position_codebooks(logits: Tensor, positions: Tensor, vocab_size: int, length: int) -> Tensor:
    """Vector modalities: position j of a ``length``-token vector may only take the ids of codebook j,
    ``[j * C, (j + 1) * C)`` with ``C = vocab_size // length`` (the layout of
    :class:`tokenizers_zoo.vector.VectorTokenizer`). logits (B, n, V), positions (B, n) -> logits."""
    if vocab_size % length:
        return logits  # not one codebook per position: nothing to restrict
    book = torch.arange(logits.shape[-1], device=logits.device) // (vocab_size // length)  # (V,)
    return logits.masked_fill(book[None, None, :] != positions[..., None], float("-inf"))


class ParallelDecoder(_GuidedDecoder):
    """Logits of an image/vector target at queried positions, given conditions and known tokens
    (vector targets: each position restricted to its own codebook's ids)."""

    def __call__(
        self,
        tokens: Tensor,  # (B, L) current target tokens (only ``known`` ones are read)
        known: Tensor,  # (B, L) bool
        query_positions: Tensor,  # (B, n)
        query_valid: Tensor,  # (B, n) bool
    ) -> Tensor:
        """Mixed logits (B, n, V) in fp32; rows of invalid queries are meaningless."""
        b, length = tokens.shape
        positions = torch.arange(length, device=tokens.device).expand(b, length)
        config = self.model.config
        part = EncoderInputs.of_modality(self.index, GivenTokens(tokens, positions, known), config.patch_width, config.value_width)
        if bool(known.any()):
            enc = self.passes.cat(part.compact().repeat(self.num_passes)).compact()
        else:
            enc = self.passes.compact()
        context = enc.encode_with(self.model)  # (P * B, Ne, D)
        qpos, qvalid = self._rows(query_positions), self._rows(query_valid)
        hidden = self.model.decode(
            context, enc.valid, torch.zeros_like(qpos), torch.full_like(qpos, self.index), qpos, qvalid
        )  # (P * B, n, D)
        logits = self._mix(hidden)
        if self.modality.kind == "vector":
            logits = restrict_to_position_codebooks(logits, query_positions, self.modality.vocab_size, self.modality.length)
        return logits


class SequenceDecoder(_GuidedDecoder):
    """Next-token logits of a sequence target; call with the new decoder inputs and positions."""

    def __init__(
        self,
        model: FourM,
        target: str,
        passes: EncoderInputs,
        coefficients: Sequence[float],
        use_cache: bool = True,
    ) -> None:
        super().__init__(model, target, passes, coefficients)
        if not self.modality.causal:
            raise FourmError(f"modality '{target}' is a {self.modality.kind}, not a sequence: it is not decoded token by token")
        enc = self.passes
        self.context = enc.encode_with(model)  # (P * B, Ne, D)
        self.context_valid = enc.valid
        self.use_cache = use_cache
        max_length = model.config.modalities[target].num_positions
        self.cache = KVCacheDecoder(model, self.context, enc.valid, max_length) if use_cache else None
        self._inputs: list[Tensor] = []
        self._positions: list[Tensor] = []

    def __call__(self, inputs: Tensor, positions: Tensor) -> Tensor:
        """Decoder inputs (B, k) (previous tokens, [SOS] first) at ``positions`` (B, k), following
        all earlier calls -> mixed logits (B, k, V) predicting the tokens at these positions."""
        inputs, positions = self._rows(inputs), self._rows(positions)
        modality = torch.full_like(inputs, self.index)
        if self.use_cache:
            hidden = self.cache(inputs, modality, positions)
        else:
            self._inputs.append(inputs)
            self._positions.append(positions)
            all_inputs, all_positions = torch.cat(self._inputs, dim=1), torch.cat(self._positions, dim=1)
            hidden = self.model.decode(
                self.context,
                self.context_valid,
                all_inputs,
                torch.full_like(all_inputs, self.index),
                all_positions,
                torch.ones_like(all_inputs, dtype=torch.bool),
            )[:, -inputs.shape[1] :]
        return self._mix(hidden)
