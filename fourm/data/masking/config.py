"""Masking configs: token budgets, the Dirichlet alpha mixture, span masking, input/target control.

Loaded from ``configs/masking/<name>.yaml`` with :meth:`MaskingConfig.from_file`. Alphas are given
per side (input / target): a symmetric ``input_alpha`` for every modality, overridden per modality
by ``input_alphas`` (alpha 0 = never chosen on that side by this mixture entry). An entry's
``drop_inputs_probability`` empties the encoder of that share of its samples (condition dropout for
classifier-free guidance); ``span_probability`` says how often a sequence given both an input and a
target budget is span-masked rather than sent whole to one side (see :mod:`.masker`). An entry's
``reveal_objects`` ({image modality: box-map modality}) gives that image's input positions as whole
objects instead of random cells: the cells of some of the objects the sample's box map holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fourm.errors import FourmError
from fourm.utils.config import Config


@dataclass
class AlphaConfig(Config):
    """One entry of the alpha mixture, chosen per sample with probability ~ ``weight``."""

    name: str = "all_to_all"
    weight: float = 1.0
    input_alpha: float = 1.0  # symmetric alpha for every input modality
    target_alpha: float = 1.0
    input_alphas: dict[str, float] = field(default_factory=dict)  # per-modality overrides
    target_alphas: dict[str, float] = field(default_factory=dict)
    # condition dropout: this share of the entry's samples keeps its targets but gets an empty encoder
    # (all padding), what the unconditional guidance pass of a chain's first target feeds the model
    drop_inputs_probability: float = 0.0
    # {image modality: box-map modality on the same grid}: when the image is an input, its input cells are
    # those of a random non-empty proper subset of the objects in the box map (whole objects, as far as
    # its input budget goes), its targets come from the other cells: what generation asks once some
    # objects are drawn (e.g. {rgb: box_map}: caption + the drawn objects -> where the others go)
    reveal_objects: dict[str, str] = field(default_factory=dict)

    def alpha(self, side: str, modality: str) -> float:
        """Alpha of ``modality`` on ``side`` ("input" or "target")."""
        overrides = self.input_alphas if side == "input" else self.target_alphas
        default = self.input_alpha if side == "input" else self.target_alpha
        return overrides.get(modality, default)

    @staticmethod
    def chooses(alpha: float, alphas: dict[str, float]) -> bool:
        """Whether a side with symmetric ``alpha`` and per-modality ``alphas`` can pick any modality."""
        return alpha > 0 or any(a > 0 for a in alphas.values())

    def validate(self, where: str = "") -> None:
        if not self.weight > 0:
            raise FourmError(f"{where}weight must be > 0, got {self.weight}")
        if not 0 <= self.drop_inputs_probability <= 1:
            raise FourmError(f"{where}drop_inputs_probability must be in [0, 1], got {self.drop_inputs_probability}")
        for side in ("input", "target"):
            sym = getattr(self, f"{side}_alpha")
            if sym < 0:
                raise FourmError(f"{where}{side}_alpha must be >= 0, got {sym}")
            for mod, a in getattr(self, f"{side}_alphas").items():
                if a < 0:
                    raise FourmError(f"{where}{side}_alphas.{mod} must be >= 0, got {a}")
            if not self.chooses(sym, getattr(self, f"{side}_alphas")):
                raise FourmError(
                    f"{where}{side}_alpha is 0 and no {side}_alphas entry is > 0 (nothing to choose)"
                )


def check_budgets(input_budget: int | None, target_budget: int | None, prefix: str = "") -> None:
    """The one rule for token budgets (a masking config's and a training run's overrides): at least
    one encoder and one decoder slot per sample. ``None`` (not overridden) passes."""
    for name, value in (("input_budget", input_budget), ("target_budget", target_budget)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise FourmError(f"{prefix}{name} must be an integer >= 1, got {value!r}")


@dataclass
class MaskingConfig(Config):
    """How each sample's tokens are split into encoder inputs and decoder targets."""

    input_budget: int = 128  # encoder tokens per sample
    target_budget: int = 128  # decoder tokens per sample
    mixture: list[AlphaConfig] = field(default_factory=lambda: [AlphaConfig()])
    input_modalities: list[str] | None = None  # None = every modality may be an input
    target_modalities: list[str] | None = None  # None = every modality may be a target
    min_input_tokens: dict[str, int] = field(default_factory=dict)
    max_input_tokens: dict[str, int] = field(default_factory=dict)
    min_target_tokens: dict[str, int] = field(default_factory=dict)
    max_target_tokens: dict[str, int] = field(default_factory=dict)
    noise_density: float | None = None  # span masking; None = target / (input + target) budget share
    mean_span_length: float = 3.0
    # a sequence with both an input and a target budget is span-masked with this probability, else it
    # goes whole to one side (drawn in proportion to its two budgets)
    span_probability: float = 0.2
    deterministic: bool = False  # evaluation: Dirichlet mean shares, masks seeded by (seed, index) only
    seed: int = 0
    pad_to_budget: bool = True  # rows always have exactly input_budget / target_budget slots

    def validate(self) -> None:
        check_budgets(self.input_budget, self.target_budget)
        if not self.mixture:
            raise FourmError("mixture is empty (expected at least one alpha config)")
        for i, entry in enumerate(self.mixture):
            entry.validate(where=f"mixture[{i}].")
        for side in ("input", "target"):
            mins, maxs = getattr(self, f"min_{side}_tokens"), getattr(self, f"max_{side}_tokens")
            for name, d in ((f"min_{side}_tokens", mins), (f"max_{side}_tokens", maxs)):
                for mod, n in d.items():
                    if n < 0:
                        raise FourmError(f"{name}.{mod} must be >= 0, got {n}")
            for mod in set(mins) & set(maxs):
                if mins[mod] > maxs[mod]:
                    raise FourmError(
                        f"min_{side}_tokens.{mod} = {mins[mod]} > max_{side}_tokens.{mod} = {maxs[mod]}"
                    )
            budget = getattr(self, f"{side}_budget")
            if sum(mins.values()) > budget:
                raise FourmError(f"min_{side}_tokens sum to {sum(mins.values())} > {side}_budget = {budget}")
            mods = getattr(self, f"{side}_modalities")
            if mods is not None and not mods:
                raise FourmError(f"{side}_modalities is empty (use null for all modalities)")
        if self.noise_density is not None and not 0 < self.noise_density <= 1:
            raise FourmError(f"noise_density must be in (0, 1] or null, got {self.noise_density}")
        if self.mean_span_length < 1:
            raise FourmError(f"mean_span_length must be >= 1, got {self.mean_span_length}")
        if not 0 <= self.span_probability <= 1:
            raise FourmError(f"span_probability must be in [0, 1], got {self.span_probability}")

    def check_modalities(self, known: Sequence[str]) -> None:
        """Raise FourmError naming the field if any modality named in this config is not in ``known``."""
        known_set = set(known)
        named: list[tuple[str, list[str]]] = [
            ("input_modalities", list(self.input_modalities or [])),
            ("target_modalities", list(self.target_modalities or [])),
        ]
        for side in ("input", "target"):
            for kind in ("min", "max"):
                named.append((f"{kind}_{side}_tokens", list(getattr(self, f"{kind}_{side}_tokens"))))
        for i, entry in enumerate(self.mixture):
            named.append((f"mixture[{i}].input_alphas", list(entry.input_alphas)))
            named.append((f"mixture[{i}].target_alphas", list(entry.target_alphas)))
            named.append((f"mixture[{i}].reveal_objects", [*entry.reveal_objects, *entry.reveal_objects.values()]))
        for where, mods in named:
            for mod in mods:
                if mod not in known_set:
                    raise FourmError(f"unknown modality '{mod}' in {where} (known: {', '.join(known)})")

    def input_set(self, order: Sequence[str]) -> list[str]:
        """Modalities (in ``order``) allowed as inputs."""
        return [m for m in order if self.input_modalities is None or m in self.input_modalities]

    def target_set(self, order: Sequence[str]) -> list[str]:
        """Modalities (in ``order``) allowed as targets."""
        return [m for m in order if self.target_modalities is None or m in self.target_modalities]
