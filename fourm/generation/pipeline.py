"""FourMPipeline: raw values in, raw values out. Tokenizes the conditions, runs chained generation and
decodes the targets with the bundle's tokenizers::

    pipe = FourMPipeline.from_pretrained()                     # models/world-default (any cwd)
    result = pipe.generate({"caption": "a red circle"}, ["bboxes", "rgb", "depth"], num_samples=2)
    result.values["rgb"][0]        # uint8 (64, 64, 3); result.tokens["rgb"]: (2, 64) ids
    result.values["bboxes"][1]     # [{"label": "circle", "box": [x0, y0, x1, y1]}, ...]

Built-in defaults per target: images / vectors MaskGIT, cosine schedule, 8 steps, temperature 1
annealed linearly to 0, no guidance (scale 1); sequences autoregressive with the KV cache,
temperature 1 with top-p 0.9, stopping at [EOS], boxes and palettes under their grammar
(:mod:`fourm.generation.grammar`: always well-formed). A bundle's ``generation.json``
(``{"targets": {"rgb": {"guidance_scale": 3.0}}}``) overrides them per modality, as does
``pipe.set_defaults("rgb", guidance_scale=3.0)`` (saved by ``save_pretrained``); per call,
``pipe.default_target("rgb", steps=12)`` or a GenerationTarget.
A sequence target may start from a given prefix (``partial={"bboxes": "circle 0.1 0.1 0.4 0.4"}``,
``caption_prefix="the red"``); generation continues after it.

Groups of a structured sequence that do not parse (a box, colour or metadata entry; possible with
the grammar off, with a malformed given prefix, or for metadata, which has no grammar) are left out
of ``result.values`` and listed in ``result.parse_failures[m][i]``; the later targets of the chain
are conditioned on the sequence re-encoded without them (``result.tokens`` keeps the sampled ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fourm.codecs import BoxMapCodec, Codec, PatchCodec, SequenceCodec
from fourm.errors import FourmError
from fourm.generation.bundle import DEFAULT_BUNDLE, load_codecs
from fourm.generation.bundle_layout import (
    GENERATION_FILE,
    MODEL_DIR,
    load_generation_defaults,
    load_registry,
    registry_from_dict,
    resolve_bundle,
    tokenizer_ref,
    write_bundle,
    write_generation_defaults,
    write_registry,
)
from fourm.generation.chain import GenerationPlan, GenerationTarget, generate_chained
from fourm.generation.conditions import GivenTokens
from fourm.generation.grammar import GRAMMAR_MODALITIES, LogitsProcessor, grammar_for
from fourm.modalities import ModalityRegistry
from fourm.model.fourm import FourM
from fourm.utils.precision import resolve_precision

__all__ = ["DEFAULT_BUNDLE", "FourMPipeline", "GenerationResult"]


@dataclass
class GenerationResult:
    """What :meth:`FourMPipeline.generate` made.

    ``tokens[m]``: (num_samples, L) ids of every condition and target (sequences padded after [EOS]);
    ``values[m]``: num_samples raw values (conditions: the input as the model saw it, e.g. resized;
    token conditions decoded; none for a GivenTokens condition).
    ``parse_failures[m]``: for each structured sequence target (boxes, palette, metadata), per
    sample the groups that did not parse, ``{"text": ..., "error": ...}`` (empty lists: all parsed).
    """

    plan: GenerationPlan
    conditions: list[str]
    targets: list[str]
    tokens: dict[str, Tensor] = field(default_factory=dict)
    values: dict[str, list[Any]] = field(default_factory=dict)
    seed: int = 0
    parse_failures: dict[str, list[list[dict[str, str]]]] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return next(iter(self.tokens.values())).shape[0]

    @property
    def modalities(self) -> list[str]:
        """Conditions, then targets in generation order."""
        return self.conditions + self.targets

    def sample(self, index: int) -> dict[str, Any]:
        """Raw sample ``index`` as a schema dict {modality: value} (values that were decoded)."""
        return {m: self.values[m][index] for m in self.modalities if m in self.values}


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise FourmError(f"unknown device {device!r} (expected cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FourmError(f"device '{device}' requested but CUDA is not available (use --device cpu)")
    return device


_GUIDANCE_FIELDS = ("guidance_scale", "guidance_weights")


def _layered(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """GenerationTarget fields, later layers over earlier ones; guidance is one setting: a layer
    that gives a scale or weights replaces both (a default scale does not clash with given weights)."""
    out: dict[str, Any] = {}
    for layer in layers:
        if any(f in layer for f in _GUIDANCE_FIELDS):
            for f in _GUIDANCE_FIELDS:
                out.pop(f, None)
        out.update(layer)
    return out


class FourMPipeline:
    """A FourM model plus a codec (tokenizer) per modality; see the module docstring."""

    def __init__(
        self,
        model: FourM,
        codecs: Mapping[str, Codec],
        registry: ModalityRegistry,
        autocast: bool | None = None,  # deprecated: precision="auto" (True) / "fp32" (False)
        generation_defaults: Mapping[str, Mapping[str, Any]] | None = None,
        precision: str = "auto",
    ) -> None:
        missing = [m for m in model.config.modalities if m not in codecs]
        if missing:
            raise FourmError(f"no tokenizer for the model's modalities: {', '.join(missing)}")
        self.model = model.eval()
        self.codecs = dict(codecs)
        self.registry = registry
        # the FourM model's precision (fourm.utils.precision): auto = bf16 where the device runs it natively
        resolve_precision(precision, "cpu")  # FourmError naming an unknown spelling
        self.precision = precision
        if autocast is not None:
            self.autocast = autocast
        # {modality: GenerationTarget fields} over the built-in defaults (a bundle's generation.json)
        self.generation_defaults: dict[str, dict[str, Any]] = {}
        for name, fields in (generation_defaults or {}).items():
            self.set_defaults(name, **fields)
        self._grammars: dict[str, LogitsProcessor | None] = {}

    @property
    def autocast(self) -> bool:
        """Deprecated spelling of :attr:`precision`: True for "auto" / "bf16", False for "fp32"."""
        return self.precision != "fp32"

    @autocast.setter
    def autocast(self, value: bool) -> None:
        self.precision = "auto" if value else "fp32"

    # ------------------------------------------------------------------------------ files

    @classmethod
    def from_pretrained(
        cls, bundle_dir: str | Path | None = None, device: str | torch.device | None = None
    ) -> FourMPipeline:
        """Load a bundle (default :data:`DEFAULT_BUNDLE`) on ``device`` (default: CUDA if available)."""
        root = resolve_bundle(bundle_dir)
        dev = _pick_device(device)
        model = FourM.from_pretrained(root / MODEL_DIR, device=dev)
        registry = load_registry(root)
        codecs = load_codecs(registry, model.config, root, dev)
        defaults = load_generation_defaults(root)
        try:
            return cls(model, codecs, registry.subset(model.config.modalities), generation_defaults=defaults)
        except FourmError as e:
            if not defaults:
                raise
            raise FourmError(f"{root / GENERATION_FILE}: {e}") from None

    def save_pretrained(self, bundle_dir: str | Path) -> Path:
        """Write a self-contained bundle (model/, tokenizers/, modalities.json), replaced atomically."""
        specs = {}
        saved: dict[int, str] = {}  # id(tokenizer) -> relative path: a shared text tokenizer is saved once
        texts = {id(c.tokenizer) for c in self.codecs.values() if isinstance(c, SequenceCodec)}
        with write_bundle(bundle_dir) as tmp:
            self.model.save_pretrained(tmp / MODEL_DIR)
            for name in self.model.config.modalities:
                tok = self.codecs[name].tokenizer
                if tok is None:  # a patch modality: nothing to save
                    specs[name] = self.registry[name].to_dict()
                    continue
                if id(tok) not in saved:
                    shared_text = isinstance(self.codecs[name], SequenceCodec) and len(texts) == 1
                    saved[id(tok)] = tokenizer_ref("text" if shared_text else name)
                    tok.save_pretrained(tmp / saved[id(tok)])
                specs[name] = {**self.registry[name].to_dict(), "tokenizer": saved[id(tok)]}
            write_registry(tmp, registry_from_dict(specs))  # validated (ml-4m's names included)
            if self.generation_defaults:
                write_generation_defaults(tmp, self.generation_defaults)
        return Path(bundle_dir)

    # ------------------------------------------------------------------------------ modalities

    @property
    def modalities(self) -> list[str]:
        return self.model.config.modality_names

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def codec(self, name: str) -> Codec:
        """The codec of modality ``name`` (FourmError listing the known ones)."""
        self.model.config.modality_index(name)
        return self.codecs[name]

    def tokenize(self, modality: str, values: Sequence[Any], prefix: bool = False) -> Tensor:
        """Raw values (one per sample) -> ids (B, L) on the CPU.

        Images: arrays, PIL images or paths (resized to the tokenizer). Sequences: captions, box lists
        or strings ``"circle 0.1 0.1 0.4 0.4; ..."``, palettes, metadata dicts; (B, max_length) ending in
        [EOS] and padded with [PAD] (too long: truncated); ``prefix``: no [EOS], only the used columns.
        """
        return self.codec(modality).encode(values, prefix=prefix)

    def detokenize(self, modality: str, tokens: Tensor | GivenTokens, seed: int = 0) -> list[Any]:
        """Ids (B, L) -> B raw values (rgb uint8 (H, W, 3), depth float (H, W), semseg class ids,
        edges float in {0, 1}; caption str, boxes list of dicts, palette list, metadata dict)."""
        return self.codec(modality).decode(tokens, seed=seed)

    def with_patch_conditions(self, conditions: Mapping[str, Any]) -> dict[str, Any]:
        """``conditions`` plus, for every raw value among them, the model's computed inputs that read
        the same raw key, as in training: pixel patches (``rgb`` -> ``rgb`` tokens and ``rgb_pixels``
        patches) and box maps (``bboxes`` -> the boxes drawn on the token grid)."""
        out = dict(conditions)
        for name, codec in self.codecs.items():
            if not isinstance(codec, (PatchCodec, BoxMapCodec)) or name in out:
                continue
            key = self.registry[name].data_key
            source = next(
                (c for c, v in conditions.items() if self.registry[c].data_key == key and not isinstance(v, (Tensor, GivenTokens))),
                None,
            )
            if source is not None:
                out[name] = conditions[source]
        return out

    def derived_inputs(self, targets: Sequence[str], conditions: Mapping[str, Any]) -> dict:
        """{target: fn(ids) -> {box map: ids}} for the generated targets that the model's box maps are
        drawn from (and that no condition gives already): the chain's later targets read the boxes'
        map as in training."""
        derive: dict = {}
        for name, codec in self.codecs.items():
            if not isinstance(codec, BoxMapCodec) or name in conditions or not self.model.config.modalities[name].input:
                continue
            key = self.registry[name].data_key
            source = next((t for t in targets if self.registry[t].data_key == key), None)
            if source is not None:
                derive.setdefault(source, []).append(name)

        def make(source: str, maps: list[str]):
            def fn(ids: Tensor) -> dict[str, Tensor]:
                values = self.codecs[source].decode(ids.cpu())
                return {m: self.codecs[m].encode(values) for m in maps}

            return fn

        return {source: make(source, maps) for source, maps in derive.items()}

    def builtin_target(self, name: str) -> dict[str, Any]:
        """The built-in default GenerationTarget fields of ``name`` (before any generation.json)."""
        mod = self.model.config.modalities.get(name)
        if mod is None:
            self.model.config.modality_index(name)  # FourmError listing the known modalities
        if mod.causal:
            return {"modality": name, "scheme": "ar", "temperature": 1.0, "top_p": 0.9, "guidance_scale": 1.0, "grammar": True}
        return {
            "modality": name, "scheme": "maskgit", "steps": 8, "schedule": "cosine",
            "temperature": 1.0, "temperature_end": 0.0, "temperature_schedule": "linear", "guidance_scale": 1.0,
        }  # fmt: skip

    def default_target(self, name: str, **overrides: Any) -> GenerationTarget:
        """The default way to generate ``name``: the built-in defaults, then the pipeline's
        ``generation_defaults`` (a bundle's generation.json, :meth:`set_defaults`), then ``overrides``."""
        if "modality" in overrides:
            raise FourmError(f"default_target('{name}', ...): give the modality as the name, not as a field")
        fields = _layered(self.builtin_target(name), self.generation_defaults.get(name, {}), overrides)
        return GenerationTarget.from_dict(fields)

    def set_defaults(self, name: str, **fields: Any) -> GenerationTarget:
        """Change the default way to generate ``name`` (e.g. ``guidance_scale=3.0``), checked; kept in
        ``generation.json`` by :meth:`save_pretrained` -> the new default target."""
        if "modality" in fields:
            raise FourmError(f"generation defaults of '{name}': 'modality' is not a field to set")
        merged = _layered(self.generation_defaults.get(name, {}), fields)
        try:
            target = GenerationTarget.from_dict(_layered(self.builtin_target(name), merged))
        except FourmError as e:
            raise FourmError(f"generation defaults of '{name}': {e}") from None
        self.generation_defaults[name] = merged
        return target

    def grammar(self, name: str) -> LogitsProcessor | None:
        """The grammar (logits processor) of sequence modality ``name``, None if it has none."""
        if name not in self._grammars:
            codec = self.codec(name)
            kind = getattr(codec, "text_kind", None)
            vocab = self.model.config.modalities[name].vocab_size
            self._grammars[name] = (
                grammar_for(kind, codec.tokenizer, vocab) if isinstance(codec, SequenceCodec) and kind in GRAMMAR_MODALITIES else None
            )
        return self._grammars[name]

    def plan(self, targets: Sequence[str | GenerationTarget]) -> GenerationPlan:
        """A checked plan: names get :meth:`default_target`; special ids from the text tokenizer."""
        if isinstance(targets, (str, GenerationTarget)):
            targets = [targets]
        items = [t if isinstance(t, GenerationTarget) else self.default_target(t) for t in targets]
        for t in items:
            mod = self.model.config.modalities.get(t.modality)
            if mod is None:
                self.model.config.modality_index(t.modality)
            if not mod.target:
                can = ", ".join(n for n, m in self.model.config.modalities.items() if m.target)
                raise FourmError(f"modality '{t.modality}' cannot be a target: the model does not predict it (targets: {can})")
        seq = next((c for c in self.codecs.values() if isinstance(c, SequenceCodec)), None)
        specials = {}
        if seq is not None:
            tok = seq.tokenizer
            banned = [*tok.sentinel_ids, tok.mask_id, tok.sos_id, tok.pad_id]
            specials = {"sos": seq.sos, "eos": seq.eos, "pad": seq.pad, "banned": banned, "min_length": 1}
        plan = GenerationPlan(targets=items, **specials)
        plan.check(self.model.config)
        return plan

    # ------------------------------------------------------------------------------ generation

    def _given(self, name: str, value: Any, prefix: bool) -> tuple[GivenTokens, Any]:
        """(tokens of one raw value / token tensor / GivenTokens, its raw value as the model sees it)."""
        codec = self.codec(name)
        if isinstance(value, GivenTokens):
            return value, None
        if isinstance(codec, PatchCodec):
            if isinstance(value, Tensor):
                return GivenTokens.patches(value), None
            raw = codec.normalize(value)
            return GivenTokens.patches(codec.encode([raw])), raw
        if isinstance(value, Tensor):
            ids = value if value.dim() == 2 else value[None]
            if prefix:
                return GivenTokens.at(ids), None
            if isinstance(codec, SequenceCodec):  # valid up to [EOS], [PAD] ignored
                given = GivenTokens.sequence(ids, eos=codec.eos, pad=codec.pad)
            else:
                given = GivenTokens.at(ids)
            return given, None  # decoded per sample after generation
        raw = codec.normalize(value)
        ids = codec.encode([raw], prefix=prefix)
        if isinstance(codec, SequenceCodec) and not prefix:
            given = GivenTokens.sequence(ids, eos=codec.eos, pad=codec.pad)
            n = int(given.valid.sum())
            ids = ids[:, :n]
        return GivenTokens.at(ids), raw

    def generate(
        self,
        conditions: Mapping[str, Any] | None = None,
        targets: Sequence[str | GenerationTarget] = (),
        num_samples: int = 1,
        seed: int = 0,
        progress: bool = True,
        partial: Mapping[str, Any] | None = None,
        caption_prefix: str | None = None,
        decode: bool = True,
    ) -> GenerationResult:
        """Generate ``targets`` in order from raw ``conditions`` -> :class:`GenerationResult`.

        ``conditions``: {modality: raw value, token ids or GivenTokens}, shared by all samples.
        ``partial``: {sequence target: a raw value to continue}, ``caption_prefix`` = partial caption.
        Same ``seed`` -> same result. ``decode=False`` skips detokenizing the targets.
        """
        plan = self.plan(targets)
        names = [t.modality for t in plan.targets]
        conditions = dict(conditions or {})
        partial = dict(partial or {})
        if caption_prefix is not None:
            partial["caption"] = caption_prefix
        for name in conditions:
            self.codec(name)
            if name in names:
                raise FourmError(
                    f"'{name}' is both a condition and a target (give a partial {name} to continue instead)"
                )
            if not self.model.config.modalities[name].input:
                raise FourmError(f"modality '{name}' cannot be a condition: the model does not read it (input: false)")
        for name in partial:
            self.codec(name)
            if name not in names:
                raise FourmError(f"partial '{name}' is not a target (targets: {', '.join(names)})")
        if num_samples < 1:
            raise FourmError(f"num_samples must be >= 1, got {num_samples}")

        conditions = self.with_patch_conditions(conditions)
        given: dict[str, GivenTokens] = {}
        raw: dict[str, Any] = {}
        for name, value in conditions.items():
            given[name], raw[name] = self._given(name, value, prefix=False)
        for name, value in partial.items():
            given[name], _ = self._given(name, value, prefix=True)
        rows = {n: None if raw[n] is None else [raw[n]] * num_samples for n in conditions}
        return self._run(plan, conditions, given, rows, num_samples, seed, progress, decode)

    def generate_batch(
        self,
        prompts: Sequence[Mapping[str, Any]],
        targets: Sequence[str | GenerationTarget] = (),
        num_samples: int = 1,
        seed: int = 0,
        progress: bool = True,
        decode: bool = True,
    ) -> GenerationResult:
        """Generate ``targets`` for several prompts at once -> one :class:`GenerationResult` of
        ``len(prompts) * num_samples`` rows, prompt-major (row ``p * num_samples + s``).

        ``prompts``: raw conditions {modality: value} per prompt, all with the same modalities (no
        token tensors). Same ``prompts`` and ``seed`` -> same result."""
        plan = self.plan(targets)
        names = [t.modality for t in plan.targets]
        if not prompts:
            raise FourmError("generate_batch needs at least one prompt")
        keys = list(prompts[0])
        for i, prompt in enumerate(prompts):
            if sorted(prompt) != sorted(keys):
                raise FourmError(f"prompt {i} has conditions {sorted(prompt)}, prompt 0 has {sorted(keys)}: batch prompts alike")
        for name in keys:
            self.codec(name)
            if name in names:
                raise FourmError(f"'{name}' is both a condition and a target")
            if not self.model.config.modalities[name].input:
                raise FourmError(f"modality '{name}' cannot be a condition: the model does not read it (input: false)")
        if num_samples < 1:
            raise FourmError(f"num_samples must be >= 1, got {num_samples}")
        full = [self.with_patch_conditions(p) for p in prompts]
        conditions = full[0]
        batch = len(prompts) * num_samples
        given: dict[str, GivenTokens] = {}
        rows: dict[str, list[Any] | None] = {}
        for name in conditions:
            codec = self.codec(name)
            raws = [codec.normalize(p[name]) for p in full]
            ids = codec.encode(raws).repeat_interleave(num_samples, dim=0)  # (batch, L)
            if isinstance(codec, PatchCodec):
                given[name] = GivenTokens.patches(ids)
            elif isinstance(codec, SequenceCodec):
                given[name] = GivenTokens.sequence(ids, eos=codec.eos, pad=codec.pad)
            else:
                given[name] = GivenTokens.at(ids)
            rows[name] = [r for r in raws for _ in range(num_samples)]
        return self._run(plan, conditions, given, rows, batch, seed, progress, decode)

    def _run(
        self,
        plan: GenerationPlan,
        conditions: Mapping[str, Any],
        given: dict[str, GivenTokens],
        raw_rows: Mapping[str, list[Any] | None],
        num_samples: int,
        seed: int,
        progress: bool,
        decode: bool,
    ) -> GenerationResult:
        """Generate ``plan`` from ``given`` tokens (``num_samples`` rows); ``raw_rows``: per condition the
        raw value of every row (None: decode its tokens)."""
        names = [t.modality for t in plan.targets]
        autocast = torch.bfloat16 if resolve_precision(self.precision, self.device) == "bf16" else None
        grammars = {t.modality: g for t in plan.targets if t.scheme == "ar" and (g := self.grammar(t.modality))}
        decoded: dict[str, list[Any]] = {}
        failures: dict[str, list[list[dict[str, str]]]] = {}
        structured = [
            t.modality for t in plan.targets
            if t.scheme == "ar" and isinstance(self.codecs[t.modality], SequenceCodec) and self.codecs[t.modality].text_kind != "caption"
        ]  # fmt: skip
        clean = {name: self._cleaner(name, decoded, failures) for name in structured}
        derive = self.derived_inputs(names, given)
        out = generate_chained(
            self.model, given, plan, num_samples, seed, autocast_dtype=autocast, progress=progress,
            grammars=grammars, clean=clean, derive=derive,
        )  # fmt: skip
        for t in plan.targets:  # decoded values and parse failures of the kept candidates
            if t.candidates > 1 and t.modality in clean:
                clean[t.modality](out[t.modality])
        tokens = {n: given[n].expand(num_samples, n).tokens.cpu() for n in conditions}
        tokens.update({n: t.cpu() for n, t in out.items()})
        values: dict[str, list[Any]] = {}
        for name in conditions:
            if raw_rows[name] is not None:
                values[name] = list(raw_rows[name])
            elif decode and isinstance(conditions[name], Tensor):
                values[name] = self.detokenize(name, tokens[name], seed=seed)
        if decode:
            for name in tqdm(names, desc="decode", disable=not progress or len(names) == 1, leave=False):
                values[name] = decoded[name] if name in decoded else self.detokenize(name, tokens[name], seed=seed)
        return GenerationResult(plan, list(conditions), names, tokens, values, seed, failures)

    def _cleaner(self, name: str, decoded: dict[str, list[Any]], failures: dict[str, list[list[dict[str, str]]]]):
        """The ``clean`` function of a structured sequence target: decodes the sampled ids (into
        ``decoded`` / ``failures``) and, for the samples with groups that did not parse, gives ids of
        the value re-encoded without them (the condition of the later targets)."""
        codec = self.codecs[name]
        assert isinstance(codec, SequenceCodec)

        def clean(ids: Tensor) -> Tensor | None:
            values, failed = codec.decode_with_failures(ids)
            decoded[name], failures[name] = values, failed
            bad = [i for i, f in enumerate(failed) if f]
            if not bad:
                return None
            fixed = codec.encode([values[i] for i in bad]).to(ids.device)  # (k, codec.length), ends in [EOS]
            width = max(ids.shape[1], fixed.shape[1])
            out = torch.full((ids.shape[0], width), codec.pad, dtype=ids.dtype, device=ids.device)
            out[:, : ids.shape[1]] = ids
            rows = torch.tensor(bad, device=ids.device)
            out[rows] = codec.pad
            out[rows, : fixed.shape[1]] = fixed
            return out

        return clean
