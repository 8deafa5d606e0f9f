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
a prefix), and it conditions nothing but that target (the targets before it never see it). With
guidance, the unconditional pass holds the targets generated so far (``grow_unconditional``), see
:mod:`fourm.generation.guidance`, and the ``negative`` conditions, if any (a negative prompt: guidance
then pushes from them towards the conditions, ``neg + s * (cond - neg)``).

A continuous target (``value_dim`` > 0, :mod:`fourm.model.continuous`) has scheme ``value``: its
value head reads one decoder pass (a regression head gives the vector; a diffusion head samples it in
``steps`` DDIM steps); its output is the values (B, L * C) fp32, and, where the model reads the
modality, the later targets are conditioned on them. No guidance, candidates or partial values.
With ``value_rounds`` R > 1 (MaskGIT-like, MAR's progressive order) the L tokens are generated in R
rounds: each round decodes the tokens still missing given the conditions and the tokens generated so
far (fed back as continuous inputs), and samples the values of a random share of them (``schedule``
counts: few first, most last); R = 1 samples all L tokens from one decoder pass.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Collection, Iterator, Mapping
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
from fourm.generation.regress import predict_vector
from fourm.generation.rerank import automatic_rerank_by, choose, log_likelihood
from fourm.generation.roar import ROARSampler
from fourm.generation.sampling import check_repetition_penalty, check_sampling_args, make_generator
from fourm.generation.schedules import (
    TemperatureSchedule,
    TemperatureScheduleName,
    TokenScheduleName,
    fixed_per_step,
)
from fourm.model.config import FourMConfig
from fourm.model.fourm import FourM
from fourm.utils.config import Config

Scheme = Literal["maskgit", "roar", "ar", "value"]
MAX_CANDIDATES = 64


@dataclass
class GenerationTarget(Config):
    """How to generate one target modality.

    ``scheme``: maskgit / roar (image and vector targets), ar (sequences) or value (continuous targets:
    the value head; ``steps``: DDIM steps of a diffusion head). ``steps``, ``schedule``
    and ``confidence_noise`` apply to the parallel schemes; ``temperature`` anneals to
    ``temperature_end`` by ``temperature_schedule`` over the steps (constant: no annealing).
    ``guidance_weights``: per-condition weights (weighted multi-condition guidance) instead of a
    ``guidance_scale``. ``max_length``: sequence length limit (default: the modality's length).
    ``grammar``: decode a structured sequence (boxes, palettes) under its grammar, so that it always
    parses (:mod:`fourm.generation.grammar`; applies where ``generate_chained`` is given one).
    ``candidates`` > 1: sample the target that many times and keep, per sample, the candidate from
    which the model finds the ``rerank_by`` modalities most likely (default: every given condition
    the model predicts), the reverse task as verifier (:mod:`fourm.generation.rerank`).
    ``no_repeat_ngram`` n > 0 (scheme ar): no n tokens in a row occur twice in a sequence (as
    ``no_repeat_ngram_size`` in Hugging Face generation), e.g. a caption naming one object twice.
    ``repetition_penalty`` p (scheme ar): the logits of tokens already in the sequence are divided
    by p where positive and multiplied by p where negative (as in Hugging Face generation; 1 = off):
    a sequence that repeats words becomes less likely to (docs/generation.md has what it costs).
    ``prefix`` (scheme ar): raw text the sequence starts with when the caller gives no partial of it,
    e.g. "there" so that a caption states its count first ("there are three shapes: ...").
    :class:`~fourm.generation.pipeline.FourMPipeline` encodes it as the target's partial;
    :func:`generate_chained` takes the partial's tokens only, and refuses a prefix without them.
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
    candidates: int = 1
    rerank_by: list[str] = field(default_factory=list)
    value_rounds: int = 1  # scheme value: rounds of progressive generation (1 = all tokens in one pass)
    no_repeat_ngram: int = 0  # scheme ar: n > 0 bans repeating any n tokens in a row (0 = off)
    repetition_penalty: float = 1.0  # scheme ar: > 1 makes tokens already in the sequence less likely (1 = off)
    prefix: str | None = None  # scheme ar: raw text to start from when no partial is given (None = none)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        where = f"target '{self.modality}'"
        if self.scheme not in ("maskgit", "roar", "ar", "value"):
            raise FourmError(f"{where}: unknown scheme '{self.scheme}' (expected maskgit, roar, ar or value)")
        if self.steps < 1:
            raise FourmError(f"{where}: steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.confidence_noise) and self.confidence_noise >= 0):
            raise FourmError(f"{where}: confidence_noise must be >= 0 and finite, got {self.confidence_noise}")
        if self.max_length is not None and self.max_length < 1:
            raise FourmError(f"{where}: max_length must be >= 1, got {self.max_length}")
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise FourmError(f"{where}: candidates must be in 1..{MAX_CANDIDATES}, got {self.candidates}")
        if self.modality in self.rerank_by:
            raise FourmError(f"{where}: rerank_by cannot hold the target itself")
        if self.value_rounds < 1 or (self.value_rounds > 1 and self.scheme != "value"):
            raise FourmError(
                f"{where}: value_rounds must be >= 1 and applies to scheme value only, got {self.value_rounds}"
            )
        if self.no_repeat_ngram < 0 or (self.no_repeat_ngram > 0 and self.scheme != "ar"):
            raise FourmError(
                f"{where}: no_repeat_ngram must be >= 0 and applies to scheme ar only, got {self.no_repeat_ngram}"
            )
        if self.repetition_penalty != 1.0 and self.scheme != "ar":
            raise FourmError(f"{where}: repetition_penalty applies to scheme ar only, got {self.repetition_penalty}")
        if self.prefix is not None and (not isinstance(self.prefix, str) or self.scheme != "ar"):
            raise FourmError(f"{where}: prefix must be text and applies to scheme ar only, got {self.prefix!r}")
        try:
            check_sampling_args(min(self.temperature, self.temperature_end), self.top_k, self.top_p)
            check_repetition_penalty(self.repetition_penalty)
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
            if mod.is_continuous or t.scheme == "value":
                _check_value_target(t, mod)
                continue
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
            for name in t.rerank_by:
                scored = config.modalities.get(name)
                if scored is None or not scored.target or scored.is_continuous:
                    raise FourmError(
                        f"target '{t.modality}': rerank_by '{name}' is not a modality the model predicts, it cannot be scored"
                    )


def _check_value_target(t: GenerationTarget, mod) -> None:
    """FourmError unless ``t`` is a continuous target generated by its value head (scheme value)."""
    where = f"target '{t.modality}'"
    if not mod.is_continuous:
        expected = "ar" if mod.causal else "maskgit or roar"
        raise FourmError(f"{where} is a {mod.kind} of tokens: scheme 'value' is for continuous modalities (expected {expected})")
    if t.scheme != "value":
        raise FourmError(f"{where} is continuous (value_dim {mod.value_dim}): scheme '{t.scheme}' does not apply (expected value)")
    if t.guidance_scale != 1.0 or t.guidance_weights:
        raise FourmError(f"{where} is continuous: guidance is not supported (expected guidance_scale 1)")
    if t.candidates != 1:
        raise FourmError(f"{where} is continuous: candidates {t.candidates} cannot be reranked (expected 1)")
    if not 1 <= t.value_rounds <= mod.length:
        raise FourmError(
            f"{where}: value_rounds must be in 1..{mod.length} (its tokens), got {t.value_rounds}"
        )
    if t.value_rounds > 1 and not mod.input:
        raise FourmError(
            f"{where} is not a model input (input: false): value_rounds > 1 cannot feed values back"
        )


def progressive_values(
    model: FourM, enc: EncoderInputs, name: str, target: GenerationTarget, generator: torch.Generator
) -> Tensor:
    """Values (B, L * C) of continuous target ``name`` in ``target.value_rounds`` rounds from encoder
    rows ``enc`` (B, Ne): each round encodes ``enc`` plus the tokens generated so far, decodes the
    missing ones and samples (``target.steps`` DDIM steps) the next random share of them."""
    mod, index = model.config.modalities[name], model.config.modality_index(name)
    b, device = enc.batch_size, enc.tokens.device
    length, rounds = mod.length, target.value_rounds
    counts = fixed_per_step(torch.tensor([length]), rounds, target.schedule)[0].tolist()  # tokens per round
    order = torch.rand(b, length, generator=generator, device=device).argsort(dim=1)  # (B, L) random order
    values = torch.zeros(b, length, mod.value_dim, device=device)
    known = torch.zeros(b, length, dtype=torch.bool, device=device)
    positions = torch.arange(length, device=device).expand(b, length)
    done = 0
    for count in counts:
        rows = enc
        if done:
            given = GivenTokens(torch.zeros_like(positions), positions, known.clone(), values.clone())
            part = EncoderInputs.of_modality(index, given, model.config.patch_width, model.config.value_width)
            rows = enc.cat(part).compact()
        missing = order[:, done:]  # (B, L - done): this round's share first
        ones = torch.ones_like(missing, dtype=torch.bool)
        context = rows.encode_with(model)
        modality = torch.full_like(missing, index)
        hidden = model.decode(context, rows.valid, torch.zeros_like(missing), modality, missing, ones)  # (B, L - done, D)
        chosen = missing[:, :count]  # (B, n)
        picked = torch.zeros_like(ones)
        picked[:, :count] = True
        sampled = model.predict_values(hidden, modality, picked, steps=target.steps, generator=generator)[name]
        sampled = sampled.float().reshape(b, count, mod.value_dim)  # row-major over (B, n)
        values.scatter_(1, chosen[..., None].expand(-1, -1, mod.value_dim), sampled)
        known.scatter_(1, chosen, True)
        done += count
    return values.reshape(b, length * mod.value_dim)


def _on(device: torch.device, derived: Tensor | GivenTokens) -> GivenTokens:
    """A derived input on ``device``: ids (B, N) at positions 0..N-1, or GivenTokens (pixel patches) as they are."""
    return derived.to(device) if isinstance(derived, GivenTokens) else GivenTokens.at(derived.to(device))


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


@dataclass
class _Chain:
    """What every target's sampling shares: the model, the plan, the hooks and the random state."""

    model: FourM
    plan: GenerationPlan
    num_samples: int
    device: torch.device
    generator: torch.Generator
    use_cache: bool
    progress: bool
    grammars: Mapping[str, LogitsProcessor]
    clean: Mapping[str, Callable[[Tensor], Tensor | None]]
    derive: Mapping[str, Callable[[Tensor], Mapping[str, Tensor | GivenTokens]]]
    negative: Mapping[str, GivenTokens] = field(default_factory=dict)
    verify: Mapping[str, Callable[[Tensor], Mapping[str, Tensor | GivenTokens]]] = field(default_factory=dict)
    read_through: frozenset[str] = frozenset()

    def candidate(self, name: str, finished: GivenTokens) -> dict[str, GivenTokens]:
        """What the reranker reads of one candidate: its ``verify`` reading (an image's pixel patches)
        alone, else its tokens and the inputs derived from them (boxes and their box map)."""
        if name in self.verify:
            return {m: _on(self.device, v) for m, v in self.verify[name](finished.tokens).items()}
        return {**self.derived(name, finished, {}), name: finished}

    def reading(self, name: str, finished: GivenTokens, derived: Mapping[str, GivenTokens]) -> dict[str, GivenTokens]:
        """What a finished target conditions the later targets with: its derived inputs, and its own
        tokens unless it is read through them (an image read as pixel patches)."""
        own = {} if name in self.read_through and derived else {name: finished}
        return {**own, **derived}  # own tokens first: the encoder rows (and bf16 sums) in the order the chain always used

    def unconditional(self, generated: Mapping[str, GivenTokens]) -> dict[str, GivenTokens]:
        """The unconditional guidance pass: the targets generated so far (``grow_unconditional``) and the
        negative conditions."""
        return {**(generated if self.plan.grow_unconditional else {}), **self.negative}

    def sample(
        self, target: GenerationTarget, available: Mapping[str, GivenTokens], unconditional: Mapping[str, GivenTokens],
        partial: GivenTokens | None,
    ) -> tuple[Tensor, GivenTokens]:
        """One draw of ``target`` -> (sampled tokens (B, L), the tokens that condition later targets)."""
        config, name, plan = self.model.config, target.modality, self.plan
        mod = config.modalities[name]
        b, device = self.num_samples, self.device
        sets, coefficients = target.guidance().passes(available, unconditional)
        passes = EncoderInputs.stack([encoder_inputs(config, s, b, device) for s in sets])
        if target.scheme == "value":
            if partial is not None:
                raise FourmError(f"target '{name}' is continuous: it cannot also be a condition (no partial values)")
            if target.value_rounds > 1:
                values = progressive_values(self.model, passes.compact(), name, target, self.generator)
            else:
                values = predict_vector(self.model, passes.compact(), name, None, target.steps, self.generator)  # (B, L * C)
            return values, GivenTokens.continuous(values.reshape(b, mod.length, mod.value_dim))
        if target.scheme == "ar":
            decoder = SequenceDecoder(self.model, name, passes, coefficients, use_cache=self.use_cache)
            processor = self.grammars.get(name) if target.grammar else None
            sampler = AutoregressiveSampler(
                target.temperature, target.top_k, target.top_p, plan.sos, plan.eos, plan.pad, plan.banned,
                plan.min_length, processor, target.no_repeat_ngram, target.repetition_penalty,
            )  # fmt: skip
            out = sampler.generate(
                decoder, b, target.max_length or mod.length, partial, self.generator, device, progress=self.progress
            )
            finished = GivenTokens.at(out.tokens, valid=out.valid)
            cleaned = self.clean[name](out.tokens) if name in self.clean else None
            if cleaned is not None:
                finished = GivenTokens.sequence(cleaned.to(device), eos=plan.eos, pad=plan.pad)
            return out.tokens, finished
        if partial is not None:
            start, known = partial.on_grid(mod.length)
        else:
            start = torch.zeros(b, mod.length, dtype=torch.long, device=device)
            known = torch.zeros_like(start, dtype=torch.bool)
        decoder = ParallelDecoder(self.model, name, passes, coefficients)
        tokens = _parallel_sampler(target).generate(decoder, start, known, self.generator, progress=self.progress)
        return tokens, GivenTokens.at(tokens)

    def derived(self, name: str, finished: GivenTokens, given: Mapping[str, GivenTokens]) -> dict[str, GivenTokens]:
        """Inputs drawn from a finished target (a box map from boxes), except those the caller gives."""
        if name not in self.derive:
            return {}
        extra = self.derive[name](finished.tokens).items()
        return {m: _on(self.device, ids) for m, ids in extra if m not in given}

    def best_of(
        self,
        target: GenerationTarget,
        given: Mapping[str, GivenTokens],
        generated: Mapping[str, GivenTokens],
        partial: GivenTokens | None = None,
    ) -> tuple[Tensor, GivenTokens, dict[str, GivenTokens]]:
        """``target.candidates`` draws, each scored by sum over s in rerank_by of log p(s | the draw and
        the inputs derived from it) -> the best per sample: (sampled tokens, conditioning tokens, derived
        inputs). Each condition is explained by the draw alone, not by the other conditions."""
        config, name = self.model.config, target.modality
        known = {**given, **generated}
        scored = list(target.rerank_by) or automatic_rerank_by(config, name, list(given))
        missing = [m for m in scored if m not in known]
        if not scored or missing:
            what = f"'{missing[0]}' is neither given nor generated before it" if missing else "no given condition is a model target"
            raise FourmError(f"target '{name}': candidates {target.candidates} need something to rerank by ({what})")
        available = {m: g for m, g in known.items() if m != name}
        unconditional = self.unconditional(generated)
        draws, conditioning, scores = [], [], []
        for _ in range(target.candidates):
            tokens, finished = self.sample(target, available, unconditional, partial)
            context = self.candidate(name, finished)
            score = torch.zeros(self.num_samples, device=self.device)
            for s in scored:
                score += log_likelihood(self.model, context, s, known[s], self.plan.sos)
            draws.append(GivenTokens.at(tokens))
            conditioning.append(finished)
            scores.append(score)
        table = torch.stack(scores)  # (K, B)
        chosen_finished, _ = choose(conditioning, table, self.plan.pad)
        chosen_tokens, _ = choose(draws, table, self.plan.pad)
        return chosen_tokens.tokens, chosen_finished, self.derived(name, chosen_finished, given)


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
    derive: Mapping[str, Callable[[Tensor], Mapping[str, Tensor | GivenTokens]]] | None = None,
    negative: Mapping[str, Tensor | GivenTokens] | None = None,
    verify: Mapping[str, Callable[[Tensor], Mapping[str, Tensor | GivenTokens]]] | None = None,
    read_through: Collection[str] = (),
) -> dict[str, Tensor]:
    """Generate ``plan``'s targets in order -> {modality: tokens (num_samples, L)} (a continuous
    target: its values (num_samples, L * C) fp32).

    Each finished target (that the model accepts as input) becomes a condition of the next ones.
    Same ``seed`` -> same tokens. ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the model under
    autocast; sampling is always fp32. ``use_cache=False`` decodes sequences without the KV cache.
    ``grammars``: {sequence target: logits processor}, used where the target's ``grammar`` is on.
    ``clean``: {sequence target: fn(tokens (B, L)) -> ids (B, L') padded after [EOS], or None};
    when it returns ids, those (not the sampled tokens) condition the later targets (e.g. the
    sequence re-encoded without its malformed groups). The returned tokens are always the sampled ones.
    ``derive``: {target: fn(its conditioning ids (B, L)) -> {modality: ids (B, N) or GivenTokens}}: inputs
    computed from a finished target (a box map drawn from the generated boxes, the pixel patches of a
    generated image) that condition the later targets like the target itself (conditions given by the
    caller are never replaced). ``verify``: {target: fn(a candidate's ids (B, L)) -> {modality: ids or
    GivenTokens}}: what the reranker reads of each candidate instead of its tokens (a generated image
    read as its pixel patches, as the model reads a given one). ``read_through``: targets whose derived
    inputs stand in for their own tokens as conditions of the later targets.
    ``negative``: conditions (as ``conditions``) that the unconditional pass of every guided target holds,
    a negative prompt; at least one target must be guided, and none may be a negative's modality.
    """
    config = model.config
    plan.check(config)
    device = next(model.parameters()).device
    given = normalize_conditions(config, conditions, num_samples, device)
    names = {t.modality for t in plan.targets}
    negative_given = _negative_conditions(config, plan, negative, num_samples, device)
    partials = {n: given.pop(n) for n in list(given) if n in names}  # continued by their target alone
    for t in plan.targets:
        if t.prefix and t.modality not in partials:
            raise FourmError(
                f"target '{t.modality}': prefix {t.prefix!r} is raw text; give its tokens as the partial "
                f"condition '{t.modality}' (FourMPipeline encodes it)"
            )
    chain = _Chain(
        model, plan, num_samples, device, make_generator(seed, device), use_cache, progress,
        grammars or {}, clean or {}, derive or {}, negative_given, verify or {}, frozenset(read_through),
    )  # fmt: skip
    generated: dict[str, GivenTokens] = {}
    outputs: dict[str, Tensor] = {}
    amp = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    with torch.no_grad(), _eval_mode(model), amp:
        for target in tqdm(plan.targets, desc="targets", disable=not progress or len(plan.targets) == 1):
            name = target.modality
            if target.candidates > 1:
                tokens, finished, extra = chain.best_of(target, given, generated, partials.get(name))
            else:
                available = {m: g for m, g in {**given, **generated}.items() if m != name}
                tokens, finished = chain.sample(target, available, chain.unconditional(generated), partials.get(name))
                extra = chain.derived(name, finished, given)
            outputs[name] = tokens
            reading = chain.reading(name, finished, extra)
            if not config.modalities[name].input:
                reading.pop(name, None)
            generated.update(reading)
    return outputs


def _negative_conditions(
    config: FourMConfig, plan: GenerationPlan, negative: Mapping[str, Tensor | GivenTokens] | None,
    num_samples: int, device: torch.device,
) -> dict[str, GivenTokens]:  # fmt: skip
    """The checked negative conditions of :func:`generate_chained` ({} for none)."""
    if not negative:
        return {}
    targets = [t.modality for t in plan.targets]
    clash = [m for m in negative if m in targets]
    if clash:
        raise FourmError(f"'{clash[0]}' is both a negative condition and a target")
    unread = [m for m in negative if m in config.modalities and not config.modalities[m].input]
    if unread:
        raise FourmError(f"modality '{unread[0]}' cannot be a negative condition: the model does not read it (input: false)")
    if not any(t.guidance().enabled for t in plan.targets):
        raise FourmError(
            "negative conditions act through guidance, and no target is guided (give one a guidance scale other than 1)"
        )
    return normalize_conditions(config, negative, num_samples, device)
