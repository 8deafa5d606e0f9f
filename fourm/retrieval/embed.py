"""Embeddings of retrieval items (any modality or set of modalities, as token ids) with a FourM model.

Two methods:

* ``pooled`` (:class:`PooledEmbedder`): the encoder output of the item's tokens, mean-pooled. By
  default each modality's tokens are pooled separately, centred by that modality's mean pooled
  vector (``fit_centers`` on a few reference items; it removes the large offset that the modality
  embedding puts on every token, which otherwise dominates cosine similarities across modalities),
  l2-normalised, averaged over the item's modalities and l2-normalised again. ``center=False,
  normalize=False`` is the plain mean over all the item's tokens. With an ``alignment``
  (:mod:`fourm.retrieval.align`, ``fit_alignment`` on paired reference items) each modality's pooled
  vector is instead projected into a space shared by the modalities (generalized CCA), then
  l2-normalised, averaged and normalised again.
* ``predicted`` (:class:`PredictedEmbedder`, 4M-21 style): the model predicts the tokens of a
  global-embedding vector modality (e.g. ``caption_embedding``) from the item, in parallel, each
  position restricted to its codebook's ids by the decoder; the vector tokenizer decodes them to a
  vector, which is l2-normalised. Decoding: expected (the default; each codebook's predicted
  distribution decoded as its expected code), greedy (one step of argmax) or maskgit
  (confidence-ordered steps). Query and key items of any modalities land in the same space. With
  ``center`` each vector is then centred by the mean prediction from items of the same modality set
  (``fit_centers`` on reference items; the predictions of a weak model share a large common part,
  which otherwise dominates cosine similarities) and l2-normalised again. With ``via`` (e.g.
  ``["caption"]``) the model first generates the listed modalities an item lacks, chained as in 4M
  generation (:mod:`fourm.retrieval.chain`), and predicts the vector from the completed item.

Both run batched under bf16 autocast on the CPU (``autocast=False`` for fp32) and return fp32
embeddings (N, D).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.generation.autoregressive import AutoregressiveSampler
from fourm.generation.decoding import ParallelDecoder
from fourm.generation.maskgit import MaskGITSampler
from fourm.generation.sampling import make_generator
from fourm.model.fourm import FourM
from fourm.retrieval.align import LinearAlignment, fit_gcca
from fourm.retrieval.chain import ItemCompleter
from fourm.retrieval.items import DEFAULT_EOS, DEFAULT_PAD, Item, batches, pack_items
from fourm.utils.precision import bf16_autocast

METHODS = ("pooled", "predicted")
DECODINGS = ("expected", "greedy", "maskgit")
NO_VECTOR_MODALITY = "model has no vector modality; fine-tune one, see docs/finetuning.md"


class _Embedder:
    """Shared part: the model, batching, autocast, the item packing ids."""

    method = ""

    def __init__(self, model: FourM, batch_size: int = 64, autocast: bool = True, eos: int | None = DEFAULT_EOS,
                 pad: int | None = DEFAULT_PAD) -> None:
        if batch_size < 1:
            raise FourmError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.batch_size, self.autocast, self.eos, self.pad = model.eval(), batch_size, autocast, eos, pad
        self.device = next(model.parameters()).device

    def _amp(self) -> contextlib.AbstractContextManager:
        return bf16_autocast(self.device) if self.autocast else contextlib.nullcontext()

    def _run(self, items: Sequence[Item], fn, progress: bool, desc: str) -> list:
        """``fn(encoder rows)`` on each batch of items, in no-grad / autocast; list of results."""
        out = []
        with torch.no_grad(), self._amp():
            for _, chunk in tqdm(list(batches(items, self.batch_size)), desc=desc, disable=not progress, leave=False):
                out.append(fn(pack_items(self.model.config, chunk, self.eos, self.pad, self.device)))
        return out

    def __call__(self, items: Sequence[Item], progress: bool = False) -> Tensor:
        """Embeddings (N, D) fp32 of ``items``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able settings (stored with an index, to embed queries the same way)."""
        raise NotImplementedError


class PooledEmbedder(_Embedder):
    """Mean-pooled encoder output; see the module docstring for ``center`` / ``normalize`` /
    ``alignment`` (which, when given, replaces centring and always normalises)."""

    method = "pooled"

    def __init__(
        self,
        model: FourM,
        center: bool = True,
        normalize: bool = True,
        centers: Mapping[str, Tensor] | None = None,
        alignment: LinearAlignment | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.center, self.normalize = bool(center), bool(normalize)
        self.centers: dict[str, Tensor] = {k: torch.as_tensor(v).float().cpu() for k, v in (centers or {}).items()}
        self.alignment = alignment

    @property
    def dim(self) -> int:
        return self.alignment.dim if self.alignment is not None else self.model.config.dim

    def modality_pools(self, enc) -> tuple[Tensor, Tensor]:
        """Encoder rows (B, Ne) -> per-modality sums of encoder outputs (B, M, D) fp32 and token
        counts (B, M) (padding excluded)."""
        x = enc.encode_with(self.model).float()  # (B, Ne, D)
        num = len(self.model.modality_names)
        onehot = F.one_hot(enc.modality.clamp(0, num - 1), num).float() * enc.valid[..., None]  # (B, Ne, M)
        return torch.einsum("bnm,bnd->bmd", onehot, x), onehot.sum(dim=1)

    def pools(self, items: Sequence[Item], progress: bool = False, desc: str = "pooling") -> tuple[Tensor, Tensor]:
        """Per-modality sums (N, M, D) and token counts (N, M) of ``items`` (see :meth:`modality_pools`)."""
        parts = self._run(items, self.modality_pools, progress, desc)
        return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()

    def fit_centers(self, items: Sequence[Item], progress: bool = False) -> dict[str, Tensor]:
        """Mean per-modality pooled vector (D,) of each modality found in ``items`` (reference items,
        e.g. a few hundred training samples); stored in ``self.centers`` and returned."""
        sums, counts = self.pools(items, progress, "fit centers")
        present = counts > 0  # (N, M)
        means = sums / counts.clamp(min=1)[..., None]  # (N, M, D)
        for m, name in enumerate(self.model.modality_names):
            if present[:, m].any():
                self.centers[name] = means[present[:, m], m].mean(dim=0)
        return {k: v for k, v in self.centers.items()}

    def fit_alignment(
        self,
        items: Sequence[Item],
        modalities: Sequence[str],
        dim: int = 32,
        ridge: float = 1e-3,
        power: float = 1.0,
        progress: bool = False,
    ) -> LinearAlignment:
        """Fit a generalized-CCA alignment of ``modalities`` on paired reference ``items`` (each holds
        every one of them; each modality is encoded on its own, as queries and keys are); stored in
        ``self.alignment`` and returned."""
        names = list(dict.fromkeys(modalities))
        for i, item in enumerate(items):
            missing = [m for m in names if m not in item]
            if missing:
                raise FourmError(f"alignment item {i} lacks '{missing[0]}' (every item must hold {', '.join(names)})")
        features = {}
        for name in names:
            sums, counts = self.pools([{name: item[name]} for item in items], progress, f"align {name}")
            m = self.model.config.modality_index(name)
            features[name] = sums[:, m] / counts[:, m, None].clamp(min=1)  # (N, D)
        self.alignment = fit_gcca(features, dim, ridge, power)
        return self.alignment

    def combine(self, sums: Tensor, counts: Tensor) -> Tensor:
        """Per-modality sums (B, M, D) and counts (B, M) -> item embeddings (B, D) (alignment: (B, dim))."""
        aligned = self.alignment is not None
        if not aligned and not self.center and not self.normalize:
            return sums.sum(dim=1) / counts.sum(dim=1, keepdim=True).clamp(min=1)
        present = counts > 0
        pooled = sums / counts.clamp(min=1)[..., None]  # (B, M, D)
        names = self.model.modality_names
        used = [m for m in range(len(names)) if present[:, m].any()]
        if aligned:  # each modality into the shared space: (B, M, dim), absent modalities stay 0
            projected = pooled.new_zeros(*pooled.shape[:2], self.alignment.dim)
            for m in used:
                projected[:, m] = self.alignment.project(names[m], pooled[:, m])
            pooled = projected
        elif self.center:
            missing = [names[m] for m in used if names[m] not in self.centers]
            if missing:
                raise FourmError(
                    f"no centering statistics for modality '{missing[0]}' (fit_centers on a few items of it, "
                    "or use center=False)"
                )
            table = torch.stack([self.centers.get(n, torch.zeros(self.dim)) for n in names])  # (M, D)
            pooled = pooled - table.to(pooled)
        normalize = self.normalize or aligned
        if normalize:
            pooled = F.normalize(pooled, dim=-1)
        out = (pooled * present[..., None]).sum(dim=1) / present.sum(dim=1, keepdim=True).clamp(min=1)
        return F.normalize(out, dim=-1) if normalize else out

    def __call__(self, items: Sequence[Item], progress: bool = False) -> Tensor:
        sums, counts = self.pools(items, progress, "pooled embeddings")
        return self.combine(sums, counts)

    def describe(self) -> dict[str, Any]:
        out = {"method": self.method, "center": self.center, "normalize": self.normalize}
        if self.alignment is not None:
            out["alignment"] = {"modalities": self.alignment.modalities, "dim": self.alignment.dim,
                                "power": self.alignment.power}
        return out


def vector_modality(model: FourM, name: str | None = None) -> str:
    """The vector target modality ``name`` of the model, or its only one (FourmError otherwise)."""
    config = model.config
    vectors = [n for n, m in config.modalities.items() if m.kind == "vector" and m.target]
    if name is None:
        if not vectors:
            raise FourmError(NO_VECTOR_MODALITY)
        if len(vectors) > 1:
            raise FourmError(f"model has several vector modalities ({', '.join(vectors)}); choose one")
        return vectors[0]
    mod = config.modalities.get(name)
    if mod is None:
        raise FourmError(f"unknown modality '{name}' (known: {', '.join(config.modalities)})")
    if mod.kind != "vector":
        raise FourmError(f"modality '{name}' is a {mod.kind} modality, not a vector one (vector: {', '.join(vectors) or 'none'})")
    if not mod.target:
        raise FourmError(f"modality '{name}' is not a model target (target: false), it cannot be predicted")
    return name


class PredictedEmbedder(_Embedder):
    """The model's prediction of a vector modality, decoded by its vector tokenizer, l2-normalised.

    ``decoding``: expected (one parallel pass; each codebook's code distribution decoded as its
    expected code, :meth:`VectorTokenizer.decode_probs`), greedy (one pass, argmax tokens) or
    maskgit (``steps`` confidence-ordered steps, default one per token, at ``temperature``; 0 =
    argmax at each step, seeded otherwise). ``center``: subtract the stored centre of the item's
    modality set (``centers``, or :meth:`fit_centers`), then l2-normalise again. ``via``: modalities
    the model generates first where an item lacks them, each joining the item
    (:mod:`fourm.retrieval.chain`; ``sequence_sampler``: greedy, with the text tokenizer's ids;
    ``via_steps``: MaskGIT steps of image modalities); centres stay keyed by the item's own modalities."""

    method = "predicted"

    def __init__(
        self,
        model: FourM,
        tokenizer: Any,
        modality: str | None = None,
        decoding: str = "expected",
        steps: int | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        center: bool = False,
        centers: Mapping[str, Tensor] | None = None,
        via: Sequence[str] = (),
        sequence_sampler: AutoregressiveSampler | None = None,
        via_steps: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.center = bool(center)
        self.centers: dict[str, Tensor] = {k: torch.as_tensor(v).float().cpu() for k, v in (centers or {}).items()}
        self.modality = vector_modality(model, modality)
        mod = model.config.modalities[self.modality]
        if tokenizer.vocab_size != mod.vocab_size or tokenizer.num_tokens != mod.length:
            raise FourmError(
                f"vector tokenizer gives {tokenizer.num_tokens} tokens of vocabulary {tokenizer.vocab_size}, but "
                f"the model's '{self.modality}' has {mod.length} tokens of vocabulary {mod.vocab_size}"
            )
        if decoding not in DECODINGS:
            raise FourmError(f"unknown decoding '{decoding}' (expected {' or '.join(DECODINGS)})")
        self.steps = int(steps or mod.length) if decoding == "maskgit" else 1
        if self.steps > 1 and not mod.input:
            raise FourmError(f"maskgit needs '{self.modality}' as a model input (input: false): use expected or greedy decoding")
        self.tokenizer, self.decoding, self.temperature, self.seed = tokenizer.eval(), decoding, float(temperature), seed
        self.sampler = MaskGITSampler(self.steps, temperature=self.temperature, confidence_noise=0.0)
        self.completer = None
        if via:
            self.completer = ItemCompleter(model, via, sequence_sampler, via_steps, self.batch_size, self._amp,
                                           self.eos, self.pad, exclude=self.modality)  # fmt: skip

    @property
    def dim(self) -> int:
        return int(self.tokenizer.cfg.input_dim)

    def predict_tokens(self, enc, generator: torch.Generator | None = None) -> Tensor:
        """Encoder rows (B, Ne) -> predicted vector tokens (B, L)."""
        decoder = ParallelDecoder(self.model, self.modality, enc, [1.0])  # position j: codebook j's ids only
        b, length = enc.batch_size, self.model.config.modalities[self.modality].length
        start = torch.zeros(b, length, dtype=torch.long, device=self.device)
        return self.sampler.generate(decoder, start, torch.zeros_like(start, dtype=torch.bool), generator)

    def predict_probs(self, enc) -> Tensor:
        """Encoder rows (B, Ne) -> each position's distribution over its codebook (B, L, C), fp32."""
        decoder = ParallelDecoder(self.model, self.modality, enc, [1.0])
        b, length = enc.batch_size, self.model.config.modalities[self.modality].length
        codebook = int(self.tokenizer.cfg.codebook_size)
        positions = torch.arange(length, device=self.device).expand(b, length)
        none = torch.zeros(b, length, dtype=torch.bool, device=self.device)
        logits = decoder(torch.zeros_like(positions), none, positions, ~none).float()  # (B, L, V)
        own = logits.reshape(b, length, length, codebook).diagonal(dim1=1, dim2=2)  # (B, C, L): codebook j at j
        return own.transpose(1, 2).softmax(dim=-1)

    def set_key(self, modalities: Sequence[str]) -> str:
        """The centre name of items holding ``modalities``: their names in model order, joined by '+'."""
        order = {n: i for i, n in enumerate(self.model.modality_names)}
        return "+".join(sorted(dict.fromkeys(modalities), key=lambda n: order.get(n, len(order))))

    def fit_centers(self, items: Sequence[Item], progress: bool = False) -> dict[str, Tensor]:
        """Mean predicted unit vector (D,) of each modality set found in ``items`` (reference items,
        e.g. a few hundred training samples); stored in ``self.centers`` (by :meth:`set_key`) and returned."""
        vectors = self.predict(items, progress)
        keys = [self.set_key(item) for item in items]
        for key in dict.fromkeys(keys):
            rows = torch.tensor([i for i, k in enumerate(keys) if k == key])
            self.centers[key] = vectors[rows].mean(dim=0)
        return {k: v for k, v in self.centers.items()}

    def __call__(self, items: Sequence[Item], progress: bool = False) -> Tensor:
        vectors = self.predict(items, progress)
        if not self.center:
            return vectors
        keys = [self.set_key(item) for item in items]
        missing = [k for k in dict.fromkeys(keys) if k not in self.centers]
        if missing:
            raise FourmError(
                f"no centre for items of '{missing[0]}' (fit_centers on a few such items, or use center=False)"
            )
        table = torch.stack([self.centers[k] for k in keys])  # (N, D)
        return F.normalize(vectors - table, dim=-1)

    def predict(self, items: Sequence[Item], progress: bool = False) -> Tensor:
        """Uncentred predicted unit vectors (N, D) of ``items``."""
        for i, item in enumerate(items):
            if self.modality in item:
                raise FourmError(f"item {i} already holds '{self.modality}' (the modality the embedding is predicted as)")
        if self.completer is not None:
            items = self.completer(items, progress)
        device = self.tokenizer.token_offsets.device
        if self.decoding == "expected":
            probs = torch.cat(self._run(items, self.predict_probs, progress, "predicted embeddings"))
            with torch.no_grad():
                vectors = self.tokenizer.decode_probs(probs.to(device)).float()
        else:
            generator = make_generator(self.seed, self.device)
            tokens = torch.cat(self._run(items, lambda enc: self.predict_tokens(enc, generator), progress, "predicted embeddings"))
            with torch.no_grad():
                vectors = self.tokenizer.decode(tokens.to(device)).float()
        return F.normalize(vectors, dim=-1).cpu()

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "modality": self.modality,
            "center": self.center,
            "decoding": self.decoding,
            "steps": self.steps,
            "temperature": self.temperature,
            "seed": self.seed,
            "via": list(self.completer.via) if self.completer is not None else [],
        }
