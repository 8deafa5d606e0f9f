"""Chained any-to-any generation: generate targets one after another, each conditioned on the
user's conditions and on every target finished before it.

Usage::

    plan = GenerationPlan(targets=[
        GenerationTarget("depth", scheme="maskgit", steps=8, temperature=1.0, guidance_scale=2.0),
        GenerationTarget("caption", scheme="ar", temperature=0.0),
    ])
    out = generate_chained(model, {"rgb": rgb_tokens}, plan, num_samples=4, seed=0)
    out["depth"], out["caption"]        # (4, 196) ids; (4, L) ids padded after [EOS]

or from a YAML file (``GenerationPlan.from_file("plan.yaml")``)::

    targets:
      - {modality: depth, scheme: maskgit, steps: 8, guidance_scale: 2.0}
      - {modality: caption, scheme: ar, temperature: 0.0, top_p: 0.9}
    eos: 2

A condition on a target modality is partial: its tokens are kept (image: given positions; sequence:
a prefix). With guidance, the unconditional pass holds the targets generated so far
(``grow_unconditional``), see :mod:`fourm.generation.guidance`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.generation.autoregressive import AutoregressiveSampler
from fourm.generation.conditions import EncoderInputs, GivenTokens, encoder_inputs, normalize_conditions
from fourm.generation.decoding import ParallelDecoder, SequenceDecoder
from fourm.generation.grammar import LogitsProcessor
from fourm.generation.guidance import Guidance
from fourm.generation.maskgit import MaskGITSampler, ParallelSampler
from fourm.generation.roar import ROARSampler
from fourm.generation.sampling import check_sampling_args, make_generator
from fourm.generation.schedules import TemperatureSchedule, TemperatureScheduleName, TokenScheduleName
from fourm.model.config import FourMConfig
from fourm.model.fourm import FourM
from fourm.utils.config import Config

Scheme = Literal["maskgit", "roar", "ar"]


@dataclass
class GenerationTarget(Config):
    """How to generate one target modality.

    ``scheme``: maskgit / roar (image and vector targets) or ar (sequences). ``steps``, ``schedule``
    and ``confidence_noise`` apply to the parallel schemes; ``temperature`` anneals to
    ``temperature_end`` by ``temperature_schedule`` over the steps (constant: no annealing).
    ``guidance_weights``: per-condition weights (weighted multi-condition guidance) instead of a
    ``guidance_scale``. ``max_length``: sequence length limit (default: the modality's length).
    ``grammar``: decode a structured sequence (boxes, palettes) under its grammar, so that it always
    parses (:mod:`fourm.generation.grammar`; applies where ``generate_chained`` is given one).
    """

    modality: str
    scheme: Scheme = "maskgit"
    steps: int = 8
    schedule: TokenScheduleName = "cosine"
    temperature: float = 1.0
    temperature_end: float = 0.0
    temperature_schedule: TemperatureScheduleName = "constant"
    top_k: int = 0
    top_p: float = 1.0
    confidence_noise: float = 1.0
    guidance_scale: float = 1.0
    guidance_weights: dict[str, float] = field(default_factory=dict)
    max_length: int | None = None
    grammar: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        where = f"target '{self.modality}'"
        if self.scheme not in ("maskgit", "roar", "ar"):
            raise FourmError(f"{where}: unknown scheme '{self.scheme}' (expected maskgit, roar or ar)")
        if self.steps < 1:
            raise FourmError(f"{where}: steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.confidence_noise) and self.confidence_noise >= 0):
            raise FourmError(f"{where}: confidence_noise must be >= 0 and finite, got {self.confidence_noise}")
        if self.max_length is not None and self.max_length < 1:
            raise FourmError(f"{where}: max_length must be >= 1, got {self.max_length}")
        try:
            check_sampling_args(min(self.temperature, self.temperature_end), self.top_k, self.top_p)
            self.guidance()
            self.temperatures()
        except FourmError as e:
            raise FourmError(f"{where}: {e}") from None

    def guidance(self) -> Guidance:
        return Guidance(self.guidance_scale, dict(self.guidance_weights))

    def temperatures(self) -> TemperatureSchedule:
        return TemperatureSchedule(self.temperature, self.temperature_end, self.temperature_schedule)


@dataclass
class GenerationPlan(Config):
    """Targets in generation order, and the special ids of sequence targets."""

    targets: list[GenerationTarget] = field(default_factory=list)
    sos: int = 1
    eos: int | None = 2  # None: sequences always run to their maximum length
    pad: int = 0
    banned: list[int] = field(default_factory=list)  # ids sequence targets never sample (sentinels, [MASK], ...)
    min_length: int = 0  # sequence targets: no [EOS] before this many tokens
    grow_unconditional: bool = True  # earlier targets stay in the unconditional guidance pass

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not self.targets:
            raise FourmError("the generation plan has no targets (expected at least one)")
        names = [t.modality for t in self.targets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise FourmError(f"modality '{repeated[0]}' appears twice in the generation plan (expected once)")

    def check(self, config: FourMConfig) -> None:
        """FourmError if a target does not fit the model (unknown, not a target, wrong scheme)."""
        for t in self.targets:
            mod = config.modalities.get(t.modality)
            if mod is None:
                raise FourmError(f"unknown modality '{t.modality}' in the plan (known: {', '.join(config.modalities)})")
            if not mod.target:
                raise FourmError(f"modality '{t.modality}' is not a model target (target: false), it cannot be generated")
            if (t.scheme == "ar") != mod.causal:
                expected = "ar" if mod.causal else "maskgit or roar"
                raise FourmError(
                    f"target '{t.modality}' is a {mod.kind} modality: scheme '{t.scheme}' does not apply (expected {expected})"
                )
            if t.scheme != "ar" and t.steps > 1 and not mod.input:
                raise FourmError(
                    f"target '{t.modality}' is not a model input (input: false), so {t.scheme} cannot feed fixed "
                    "tokens back: use steps: 1"
                )
            if t.max_length is not None and t.max_length > mod.length:
                raise FourmError(
                    f"target '{t.modality}': max_length {t.max_length} exceeds the modality's length {mod.length}"
                )


@contextlib.contextmanager
def _eval_mode(model: FourM) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _parallel_sampler(target: GenerationTarget) -> ParallelSampler:
    temperature = target.temperatures()
    if target.scheme == "roar":
        return ROARSampler(target.steps, temperature, target.top_k, target.top_p)
    return MaskGITSampler(
        target.steps, target.schedule, temperature, target.top_k, target.top_p, target.confidence_noise
    )


def generate_chained(
    model: FourM,
    conditions: Mapping[str, Tensor | GivenTokens] | None,
    plan: GenerationPlan,
    num_samples: int = 1,
    seed: int = 0,
    autocast_dtype: torch.dtype | None = None,
    use_cache: bool = True,
    progress: bool = False,
    grammars: Mapping[str, LogitsProcessor] | None = None,
    clean: Mapping[str, Callable[[Tensor], Tensor | None]] | None = None,
    derive: Mapping[str, Callable[[Tensor], Mapping[str, Tensor]]] | None = None,
) -> dict[str, Tensor]:
    """Generate ``plan``'s targets in order -> {modality: tokens (num_samples, L)}.

    Each finished target (that the model accepts as input) becomes a condition of the next ones.
    Same ``seed`` -> same tokens. ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the model under
    autocast; sampling is always fp32. ``use_cache=False`` decodes sequences without the KV cache.
    ``grammars``: {sequence target: logits processor}, used where the target's ``grammar`` is on.
    ``clean``: {sequence target: fn(tokens (B, L)) -> ids (B, L') padded after [EOS], or None};
    when it returns ids, those (not the sampled tokens) condition the later targets (e.g. the
    sequence re-encoded without its malformed groups). The returned tokens are always the sampled ones.
    ``derive``: {target: fn(its conditioning ids (B, L)) -> {modality: ids (B, N)}}: inputs computed from
    a finished target (e.g. a box map drawn from the generated boxes) that condition the later targets
    like the target itself (conditions given by the caller are never replaced).
    """
    config = model.config
    plan.check(config)
    device = next(model.parameters()).device
    given = normalize_conditions(config, conditions, num_samples, device)
    generator = make_generator(seed, device)
    generated: dict[str, GivenTokens] = {}
    outputs: dict[str, Tensor] = {}
    amp = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    with torch.no_grad(), _eval_mode(model), amp:
        for target in tqdm(plan.targets, desc="targets", disable=not progress or len(plan.targets) == 1):
            name = target.modality
            mod = config.modalities[name]
            partial = given.get(name)
            available = {m: g for m, g in {**given, **generated}.items() if m != name}
            unconditional = generated if plan.grow_unconditional else {}
            sets, coefficients = target.guidance().passes(available, unconditional)
            passes = EncoderInputs.stack([encoder_inputs(config, s, num_samples, device) for s in sets])
            if target.scheme == "ar":
                decoder = SequenceDecoder(model, name, passes, coefficients, use_cache=use_cache)
                processor = (grammars or {}).get(name) if target.grammar else None
                sampler = AutoregressiveSampler(
                    target.temperature, target.top_k, target.top_p, plan.sos, plan.eos, plan.pad, plan.banned,
                    plan.min_length, processor,
                )  # fmt: skip
                out = sampler.generate(
                    decoder, num_samples, target.max_length or mod.length, partial, generator, device, progress=progress
                )
                tokens, finished = out.tokens, GivenTokens.at(out.tokens, valid=out.valid)
                cleaned = clean[name](tokens) if clean and name in clean else None
                if cleaned is not None:
                    finished = GivenTokens.sequence(cleaned.to(device), eos=plan.eos, pad=plan.pad)
            else:
                if partial is not None:
                    start, known = partial.on_grid(mod.length)
                else:
                    start = torch.zeros(num_samples, mod.length, dtype=torch.long, device=device)
                    known = torch.zeros_like(start, dtype=torch.bool)
                decoder = ParallelDecoder(model, name, passes, coefficients)
                tokens = _parallel_sampler(target).generate(decoder, start, known, generator, progress=progress)
                finished = GivenTokens.at(tokens)
            outputs[name] = tokens
            if mod.input:
                generated[name] = finished
            if derive and name in derive:
                for extra, ids in derive[name](finished.tokens).items():
                    if extra not in given:
                        generated[extra] = GivenTokens.at(ids.to(device))
    return outputs
