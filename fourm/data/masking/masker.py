"""Per-sample 4M multimodal masking: a token sample -> one packed row of encoder and decoder tokens.

For each sample (``dict[modality -> LongTensor]``, modalities may be missing):

1. pick an alpha entry from the mixture (by weight; the heaviest one in deterministic mode); with
   the entry's ``drop_inputs_probability`` the sample gets no inputs at all (condition dropout: an
   all-padding encoder row, what the unconditional guidance pass of a chain's first target feeds
   the model, see :mod:`fourm.generation.guidance`). Draw Dirichlet shares over the present
   modalities allowed as inputs, and separately as targets (deterministic mode: the Dirichlet
   mean). If every present modality has alpha 0 on a side the shares fall back to uniform;
2. the sample's budgets: ``input_budget`` / ``target_budget``; or, where an image-like modality may
   be both an input and a target (the entry can give it a share on both sides) and the modalities
   the entry can choose hold fewer tokens T than the budgets' sum, T split in the same ratio (input
   at least 1 and at least the input sequences' length), so inputs cannot take the cells the targets
   need; rows are still padded to the configured budgets;
3. split the input budget with the input shares (availability = number of tokens; a
   ``reveal_objects`` image: its chosen objects' cells), then the target budget with the target
   shares (an image's availability = its tokens not already used as inputs); a split-down target
   budget grows to what the inputs left (at most ``target_budget``), see
   :mod:`fourm.data.masking.budgets`;
4. sequences (in modality order): input budget only -> whole sequence as input; target budget
   only -> whole sequence as target (with its [EOS]; decoder input = [SOS] + target[:-1]). Both
   -> with probability ``span_probability`` span masking (:mod:`.spans`, ``noise_density`` or, if
   null, target / (input + target) budget), else the whole sequence goes to one side, drawn in
   proportion to its input vs target budget (to the input when it is the entry's only input, so
   the encoder is not emptied by chance). Whole or span-masked, each side keeps its real length
   while the budget left allows (clipped by ``max_input_tokens`` / ``max_target_tokens``, keeping
   the minimum tokens of the image/vector modalities), else a prefix (so causal teacher forcing
   stays consistent): a whole target is not cut to its Dirichlet budget;
5. image-like / vector modalities share what the sequences left of both budgets (same shares,
   water-filled again), and get a random subset of positions as inputs and a disjoint random
   subset as targets; an image the entry names in ``reveal_objects`` gets whole objects as inputs
   instead (the cells of a random non-empty proper subset of the labels in its box map, drawn in
   step 2, at most its input budget; fewer than two objects: random cells as usual).

The masker counts, per modality, the samples where it was present, an input, a target
(:meth:`Masker.role_counts`; per process, so per DataLoader worker); after ``warn_after`` samples
it warns once about modalities allowed as targets, present in >= 5% of the samples and never a
target (budgets or mixture that starve them).

Packing: modalities in ``modality_order``; image positions ascending; sequence positions are the
index in the encoder-side / decoder-side sequence. Unused slots are padding (valid False, ids 0;
without ``pad_to_budget`` an empty encoder keeps one padding slot). Exactly ``input_budget`` /
``target_budget`` tokens are valid whenever the sample has enough.

Patch modalities (``patch_dims``: name -> P, :mod:`fourm.core.patches`) are image modalities whose
sample is N pixel patches, flat (N * P,) or (N, P). They are inputs only (never targets, whatever
the config says), budgeted by patches (N) and positioned like any image; their encoder slots get
token id 0 and the chosen patches go to ``enc_patches`` (1, Ne, max P) uint8, in slot order.

Continuous modalities (``value_dims``: name -> C, :mod:`fourm.model.continuous`) are vector
modalities whose sample is N float vectors, flat (N * C,) or (N, C); masked like any vector (token
id 0), with the chosen values in ``enc_values`` (1, Ne, max C) and ``dec_values`` (1, Nd, max C) fp32.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fourm.core.batch import MultimodalBatch
from fourm.data.masking.budgets import allocate, draw_shares
from fourm.data.masking.config import AlphaConfig, MaskingConfig
from fourm.data.masking.spans import SequenceSpecialTokens, span_mask
from fourm.errors import FourmError

KINDS = ("image", "sequence", "vector")
_BIG = np.iinfo(np.int64).max // 4


def _as_numpy(tokens) -> np.ndarray:
    if isinstance(tokens, torch.Tensor):
        return tokens.detach().cpu().reshape(-1).numpy().astype(np.int64)
    return np.asarray(tokens, dtype=np.int64).reshape(-1)


@dataclass
class SamplePlan:
    """One sample's masking plan before any position is drawn (steps 1-2 of the module docstring).

    ``in_mods`` / ``tg_mods``: the present modalities allowed as inputs (none after condition
    dropout) / targets, in the sample's order; ``in_shares`` / ``tg_shares``: their Dirichlet shares;
    ``budget_in`` / ``budget_tg``: the sample's budgets; ``grid_in`` / ``grid_tg``: the image-like /
    vector modalities among ``in_mods`` / ``tg_mods``.
    """

    in_mods: list[str]
    tg_mods: list[str]
    in_shares: dict[str, float]
    tg_shares: dict[str, float]
    budget_in: int
    budget_tg: int
    grid_in: list[str] = field(default_factory=list)
    grid_tg: list[str] = field(default_factory=list)
    reveal: dict[str, str] = field(default_factory=dict)  # the entry's reveal_objects
    objects: dict[str, np.ndarray] = field(default_factory=dict)  # reveal: {image: the chosen objects' cells}


class Masker:
    """Callable ``(token sample, np.random.Generator) -> MultimodalBatch`` of batch size 1."""

    def __init__(
        self,
        config: MaskingConfig,
        modality_order: Sequence[str],
        kinds: Mapping[str, str],
        specials: SequenceSpecialTokens | None = None,
        patch_dims: Mapping[str, int] | None = None,
        warn_after: int | None = 2000,
        input_only: Sequence[str] = (),
        value_dims: Mapping[str, int] | None = None,
    ):
        self.config = config
        self.order = list(modality_order)
        if len(set(self.order)) != len(self.order):
            raise FourmError(f"modality_order has duplicates: {self.order}")
        for m in self.order:
            if m not in kinds:
                raise FourmError(f"no kind given for modality '{m}' (expected one of {', '.join(KINDS)})")
            if kinds[m] not in KINDS:
                raise FourmError(f"unknown kind '{kinds[m]}' for modality '{m}' (known: {', '.join(KINDS)})")
        self.kinds = {m: kinds[m] for m in self.order}
        if specials is None and "sequence" in self.kinds.values():
            raise FourmError("sequence modalities need SequenceSpecialTokens (specials=None given)")
        self.specials = specials
        config.check_modalities(self.order)
        for i, entry in enumerate(config.mixture):
            for image, box_map in entry.reveal_objects.items():
                if self.kinds[image] != "image" or self.kinds[box_map] != "image":
                    raise FourmError(f"mixture[{i}].reveal_objects: {image} -> {box_map} must name two image modalities")
        self.patch_dims = self._check_patch_dims(patch_dims or {})
        self.patch_width = max(self.patch_dims.values(), default=0)
        self.value_dims = self._check_value_dims(value_dims or {})
        self.value_width = max(self.value_dims.values(), default=0)
        self.index = {m: i for i, m in enumerate(self.order)}
        self.inputs = set(config.input_set(self.order))
        unknown = [m for m in input_only if m not in self.index]
        if unknown:
            raise FourmError(f"input_only: unknown modality '{unknown[0]}' (modality order: {', '.join(self.order)})")
        # patches and input-only modalities (box maps, a model's target: false) are never targets
        self.targets = set(config.target_set(self.order)) - set(self.patch_dims) - set(input_only)
        weights = np.array([e.weight for e in config.mixture], dtype=np.float64)
        self.mixture_probs = weights / weights.sum()
        if warn_after is not None and warn_after < 1:
            raise FourmError(f"warn_after must be >= 1 or None, got {warn_after}")
        self.warn_after = warn_after
        self._samples = 0
        self._roles = {m: {"present": 0, "input": 0, "target": 0} for m in self.order}
        self._warned = False

    # ---- role counters -------------------------------------------------------------------------
    def role_counts(self) -> dict[str, dict[str, int]]:
        """Per modality, the number of samples masked by this Masker (in this process) where it was
        present, an input, a target: ``{modality: {"present": n, "input": n, "target": n}}``."""
        return {m: dict(c) for m, c in self._roles.items()}

    def starved_targets(self, min_presence: float = 0.05) -> list[str]:
        """Modalities allowed as targets and present in at least ``min_presence`` of the samples so
        far that were never a target."""
        n = max(self._samples, 1)
        return [
            m for m, c in self._roles.items()
            if m in self.targets and c["present"] >= min_presence * n and c["present"] and not c["target"]
        ]  # fmt: skip

    def _count_roles(self, tokens: Mapping, enc: Mapping, dec: Mapping) -> None:
        self._samples += 1
        for m in tokens:
            c = self._roles[m]
            c["present"] += 1
            c["input"] += m in enc
            c["target"] += m in dec
        if not self._warned and self.warn_after is not None and self._samples >= self.warn_after:
            self._warned = True
            starved = self.starved_targets()
            if starved:
                warnings.warn(
                    f"masking: after {self._samples} samples, target modalities {', '.join(starved)} were present "
                    f"in >= 5% of them but never a target (budgets {self.config.input_budget}/"
                    f"{self.config.target_budget}, min/max tokens and the mixture leave them nothing)",
                    stacklevel=2,
                )

    def _check_patch_dims(self, patch_dims: Mapping[str, int]) -> dict[str, int]:
        for m, p in patch_dims.items():
            if m not in self.kinds:
                raise FourmError(f"patch_dims: unknown modality '{m}' (modality order: {', '.join(self.order)})")
            if self.kinds[m] != "image":
                raise FourmError(f"patch_dims: modality '{m}' is a {self.kinds[m]}, patch modalities are images")
            if int(p) < 1:
                raise FourmError(f"patch_dims.{m} must be >= 1, got {p}")
        return {m: int(patch_dims[m]) for m in self.order if m in patch_dims}

    def _check_value_dims(self, value_dims: Mapping[str, int]) -> dict[str, int]:
        for m, c in value_dims.items():
            if m not in self.kinds:
                raise FourmError(f"value_dims: unknown modality '{m}' (modality order: {', '.join(self.order)})")
            if self.kinds[m] != "vector":
                raise FourmError(f"value_dims: modality '{m}' is a {self.kinds[m]}, continuous modalities are vectors")
            if int(c) < 1:
                raise FourmError(f"value_dims.{m} must be >= 1, got {c}")
        return {m: int(value_dims[m]) for m in self.order if m in value_dims}

    def _values(self, m: str, values) -> np.ndarray:
        """A continuous modality's sample, flat (N * C,) or (N, C) -> (N, C) float32."""
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        arr, c = np.asarray(values, dtype=np.float32).reshape(-1), self.value_dims[m]
        if len(arr) % c:
            raise FourmError(f"continuous modality '{m}': {len(arr)} values is not a whole number of tokens of {c}")
        if not np.isfinite(arr).all():
            raise FourmError(f"continuous modality '{m}': values must be finite (got NaN or inf)")
        return arr.reshape(-1, c)

    def _patches(self, m: str, values) -> np.ndarray:
        """A patch modality's sample, flat (N * P,) or (N, P) -> (N, P) uint8."""
        arr, p = _as_numpy(values), self.patch_dims[m]
        if len(arr) % p:
            raise FourmError(f"patch modality '{m}': {len(arr)} values is not a whole number of patches of {p}")
        if arr.min() < 0 or arr.max() > 255:
            raise FourmError(f"patch modality '{m}': values must be in [0, 256), got {arr.min()}..{arr.max()}")
        return arr.reshape(-1, p).astype(np.uint8)

    # ---- budgets -------------------------------------------------------------------------------
    def pick_entry(self, rng: np.random.Generator) -> AlphaConfig:
        """The mixture entry for one sample (heaviest entry in deterministic mode)."""
        if self.config.deterministic:
            return self.config.mixture[int(np.argmax(self.mixture_probs))]
        return self.config.mixture[int(rng.choice(len(self.mixture_probs), p=self.mixture_probs))]

    def _shares(self, entry: AlphaConfig, side: str, mods: list[str], rng: np.random.Generator) -> np.ndarray:
        alphas = np.array([entry.alpha(side, m) for m in mods], dtype=np.float64)
        if len(mods) and not (alphas > 0).any():
            alphas = np.ones(len(mods))
        return draw_shares(alphas, None if self.config.deterministic else rng)

    def _limits(self, side: str, mods: list[str]) -> tuple[np.ndarray, np.ndarray]:
        mins = getattr(self.config, f"min_{side}_tokens")
        maxs = getattr(self.config, f"max_{side}_tokens")
        return (
            np.array([mins.get(m, 0) for m in mods], dtype=np.int64),
            np.array([maxs.get(m, _BIG) for m in mods], dtype=np.int64),
        )

    def _allocate(self, side: str, total: int, mods: list[str], shares: np.ndarray, avail: list[int]) -> dict:
        lo, hi = self._limits(side, mods)
        return dict(zip(mods, allocate(total, shares, np.array(avail, dtype=np.int64), lo, hi).tolist()))

    def sample_budgets(self, num_tokens: int, whole_inputs: int = 0) -> tuple[int, int]:
        """(input, target) budgets of a sample with ``num_tokens`` tokens (each modality counted once):
        the configured ones, or, for a smaller sample, ``num_tokens`` split in the same ratio, the
        input side at least ``whole_inputs`` (the input sequences' length: a whole sequence input is
        not cut by the split)."""
        b_in, b_tg = self.config.input_budget, self.config.target_budget
        if num_tokens >= b_in + b_tg or b_tg == 0:
            return b_in, b_tg
        n_in = min(b_in, max(1, whole_inputs, round(num_tokens * b_in / (b_in + b_tg))))
        return n_in, max(num_tokens - n_in, 0)

    # ---- sequences -----------------------------------------------------------------------------
    def _sequence_mode(self, seq: np.ndarray, b_in: int, b_tg: int, sole_input: bool, rng) -> str:
        """How a sequence is masked: "span", "input" (whole), "target" (whole) or "none"."""
        if b_in <= 0 or b_tg <= 0:
            return "input" if b_in > 0 else "target" if b_tg > 0 else "none"
        num_content = len(seq) - int(len(seq) > 0 and seq[-1] == self.specials.eos)
        if num_content == 0:
            return "input"
        p = self.config.span_probability
        if p >= 1 or (p > 0 and rng.random() < p):
            return "span"
        if sole_input:  # the entry's only input: sending it to the decoder would empty the encoder
            return "input"
        return "input" if rng.random() < b_in / (b_in + b_tg) else "target"

    def _mask_sequence(self, seq: np.ndarray, mode: str, density: float, rng: np.random.Generator):
        """-> (encoder tokens, decoder input, decoder target), each (L,) int64 (possibly empty);
        ``density``: the span noise density when the config gives none."""
        sp = self.specials
        empty = np.zeros(0, dtype=np.int64)
        if mode == "span":
            density = self.config.noise_density or density
            out = span_mask(seq, density, self.config.mean_span_length, sp, rng)
            return out.encoder_input, out.decoder_input, out.decoder_target
        if mode == "input":
            return seq, empty, empty
        if mode == "target":
            return empty, np.concatenate([[sp.sos], seq[:-1]]).astype(np.int64), seq
        return empty, empty, empty

    def _read(self, sample: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
        """(tokens, patches) of the modalities present in ``sample`` (patch and continuous slots carry
        token id 0; ``patches`` holds both the pixel patches and the continuous values)."""
        tokens, patches = {}, {}
        for m in self.order:
            t = sample.get(m)
            if t is not None and len(t) > 0:
                if m in self.patch_dims or m in self.value_dims:  # token id 0, contents to enc_patches / *_values
                    patches[m] = self._patches(m, t) if m in self.patch_dims else self._values(m, t)
                    tokens[m] = np.zeros(len(patches[m]), dtype=np.int64)
                else:
                    tokens[m] = _as_numpy(t)
        if not tokens:
            raise FourmError(
                f"token sample has none of the modalities {', '.join(self.order)} (keys: {list(sample)})"
            )
        return tokens, patches

    def _reserved(self, side: str, mods: list[str], budgets: dict) -> int:
        """Minimum tokens the grid modalities ``mods`` keep on ``side`` (whole sequences leave them)."""
        mins = getattr(self.config, f"min_{side}_tokens")
        return sum(min(mins.get(m, 0), budgets.get(m, 0)) for m in mods)

    # ---- main ----------------------------------------------------------------------------------
    def __call__(self, sample: Mapping[str, torch.Tensor], rng: np.random.Generator) -> MultimodalBatch:
        """Mask one token sample with ``rng`` (see the module docstring): plan the sample's roles
        and budgets (steps 1-2), split the budgets (3), mask the sequences (4), then the image-like
        / vector modalities (5), and pack the row."""
        tokens, patches = self._read(sample)
        plan = self.plan(tokens, rng)
        b_in, b_tg = self.first_pass_budgets(tokens, plan)
        seq_enc, seq_dec, left_in, left_tg = self.mask_sequences(tokens, plan, b_in, b_tg, rng)
        grid_enc, grid_dec = self.mask_grids(tokens, plan, left_in, left_tg, rng)
        enc, dec = {**seq_enc, **grid_enc}, {**seq_dec, **grid_dec}
        self._count_roles(tokens, enc, dec)
        return self._pack(enc, dec, patches)

    def plan(self, tokens: Mapping[str, np.ndarray], rng: np.random.Generator) -> SamplePlan:
        """Steps 1-2 for the modalities present in ``tokens``: the mixture entry, condition dropout,
        the input / target modalities with their Dirichlet shares, and the sample's budgets."""
        entry = self.pick_entry(rng)
        p_drop = entry.drop_inputs_probability
        dropped = p_drop > 0 and rng.random() < p_drop
        in_mods = [] if dropped else [m for m in tokens if m in self.inputs]
        tg_mods = [m for m in tokens if m in self.targets]
        in_shares = dict(zip(in_mods, self._shares(entry, "input", in_mods, rng)))
        tg_shares = dict(zip(tg_mods, self._shares(entry, "target", tg_mods, rng)))
        chosen_in, chosen_tg = self._chosen(entry, "input", in_mods), self._chosen(entry, "target", tg_mods)
        budget_in, budget_tg = self.config.input_budget, self.config.target_budget
        if any(m in chosen_tg and self.kinds[m] != "sequence" for m in chosen_in):  # inputs may starve targets
            whole = sum(len(tokens[m]) for m in chosen_in if self.kinds[m] == "sequence")
            budget_in, budget_tg = self.sample_budgets(sum(len(tokens[m]) for m in {*chosen_in, *chosen_tg}), whole)
        grid_in = [m for m in in_mods if self.kinds[m] != "sequence"]
        objects = {}
        for m in grid_in:
            cells = self._object_cells(tokens, entry.reveal_objects.get(m), len(tokens[m]), rng)
            if cells is not None:
                objects[m] = cells
        return SamplePlan(
            in_mods,
            tg_mods,
            in_shares,
            tg_shares,
            budget_in,
            budget_tg,
            grid_in=grid_in,
            grid_tg=[m for m in tg_mods if self.kinds[m] != "sequence"],
            reveal=dict(entry.reveal_objects),
            objects=objects,
        )

    @staticmethod
    def _chosen(entry: AlphaConfig, side: str, mods: list[str]) -> list[str]:
        """The modalities of ``mods`` that ``entry`` can give a share on ``side`` (alpha > 0, or all of
        them when every alpha is 0: the shares fall back to uniform)."""
        named = [m for m in mods if entry.alpha(side, m) > 0]
        return named or list(mods)

    def first_pass_budgets(self, tokens: Mapping[str, np.ndarray], plan: SamplePlan) -> tuple[dict, dict]:
        """Step 3: (input, target) budgets per modality over all modalities of ``plan``; a target
        image's availability is its tokens not already taken as inputs (a sequence's: all of it). A
        split-down ``plan.budget_tg`` (a small sample, step 2) is raised here to what the inputs left."""
        b_in = self._allocate(
            "input",
            plan.budget_in,
            plan.in_mods,
            np.array(list(plan.in_shares.values())),
            [len(plan.objects.get(m, tokens[m])) for m in plan.in_mods],
        )
        tg_avail = [
            len(tokens[m]) - (b_in.get(m, 0) if self.kinds[m] != "sequence" else 0) for m in plan.tg_mods
        ]
        if plan.budget_tg < self.config.target_budget:  # a small sample: targets may take what inputs left
            plan.budget_tg = min(self.config.target_budget, max(plan.budget_tg, sum(tg_avail) - sum(
                b_in.get(m, 0) for m in plan.tg_mods if self.kinds[m] == "sequence")))
        b_tg = self._allocate(
            "target", plan.budget_tg, plan.tg_mods, np.array(list(plan.tg_shares.values())), tg_avail
        )
        return b_in, b_tg

    def mask_sequences(
        self,
        tokens: Mapping[str, np.ndarray],
        plan: SamplePlan,
        b_in: dict,
        b_tg: dict,
        rng: np.random.Generator,
    ) -> tuple[dict, dict, int, int]:
        """Step 4, the sequences in modality order, with the first-pass budgets ``b_in`` / ``b_tg``
        -> (encoder parts {m: (tokens, positions)}, decoder parts {m: (input, target, positions)},
        input budget left, target budget left). The minimum tokens of the grid modalities stay
        reserved while the sequences take theirs, and are part of what is left."""
        cfg = self.config
        enc: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        dec: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        reserved_in = self._reserved("input", plan.grid_in, b_in)
        reserved_tg = self._reserved("target", plan.grid_tg, b_tg)
        left_in, left_tg = plan.budget_in - reserved_in, plan.budget_tg - reserved_tg
        positive_inputs = [m for m in plan.in_mods if plan.in_shares[m] > 0 or b_in.get(m, 0) > 0]
        for m in tokens:
            if self.kinds[m] != "sequence":
                continue
            m_in, m_tg = b_in.get(m, 0), b_tg.get(m, 0)
            mode = self._sequence_mode(tokens[m], m_in, m_tg, positive_inputs == [m], rng)
            e, di, dt = self._mask_sequence(tokens[m], mode, m_tg / max(m_in + m_tg, 1), rng)
            e = e[: min(left_in, cfg.max_input_tokens.get(m, _BIG))]
            # the decoder side keeps its full length (with [EOS]) while the budget left lasts, else a
            # prefix (causal teacher forcing stays consistent); span masking sized it to the budgets
            n_dec = min(len(dt), cfg.max_target_tokens.get(m, _BIG), left_tg)
            di, dt = di[:n_dec], dt[:n_dec]
            left_in, left_tg = left_in - len(e), left_tg - n_dec
            if len(e):
                enc[m] = (e, np.arange(len(e)))
            if n_dec:
                dec[m] = (di, dt, np.arange(n_dec))
        return enc, dec, left_in + reserved_in, left_tg + reserved_tg

    def mask_grids(
        self,
        tokens: Mapping[str, np.ndarray],
        plan: SamplePlan,
        left_in: int,
        left_tg: int,
        rng: np.random.Generator,
    ) -> tuple[dict, dict]:
        """Step 5: the image-like / vector modalities share the budgets the sequences left (same
        shares, water-filled again); each gets random input positions and disjoint random target
        positions -> (encoder parts {m: (tokens, positions)}, decoder parts {m: (zeros, targets,
        positions)}), positions ascending."""
        g_in = self._allocate(
            "input",
            left_in,
            plan.grid_in,
            np.array([plan.in_shares[m] for m in plan.grid_in]),
            [len(plan.objects.get(m, tokens[m])) for m in plan.grid_in],
        )
        g_tg = self._allocate(
            "target",
            left_tg,
            plan.grid_tg,
            np.array([plan.tg_shares[m] for m in plan.grid_tg]),
            [len(tokens[m]) - g_in.get(m, 0) for m in plan.grid_tg],
        )
        enc: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        dec: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for m in tokens:
            if self.kinds[m] == "sequence":
                continue
            n_in, n_tg = g_in.get(m, 0), g_tg.get(m, 0)
            if not n_in and not n_tg:
                continue
            objects = plan.objects.get(m) if n_in else None
            if objects is not None:  # whole objects as inputs, the targets from the other cells
                pos_in = np.sort(rng.permutation(objects)[:n_in])
                rest = np.setdiff1d(np.arange(len(tokens[m])), pos_in)
                pos_tg = np.sort(rng.permutation(rest)[:n_tg])
            else:
                perm = rng.permutation(len(tokens[m]))
                pos_in, pos_tg = np.sort(perm[:n_in]), np.sort(perm[n_in : n_in + n_tg])
            if n_in:
                enc[m] = (tokens[m][pos_in], pos_in)
            if n_tg:
                dec[m] = (np.zeros(n_tg, dtype=np.int64), tokens[m][pos_tg], pos_tg)
        return enc, dec

    @staticmethod
    def _object_cells(tokens: Mapping, box_map: str | None, cells: int, rng: np.random.Generator) -> np.ndarray | None:
        """The cells of a random non-empty proper subset of the objects (labels > 0) in the sample's
        ``box_map`` column, or None (no such map, another grid, fewer than two objects)."""
        grid = tokens.get(box_map) if box_map is not None else None
        if grid is None or len(grid) != cells:
            return None
        labels = np.unique(grid[grid > 0])
        if len(labels) < 2:
            return None
        chosen = rng.choice(labels, size=int(rng.integers(1, len(labels))), replace=False)
        return np.flatnonzero(np.isin(grid, chosen))

    def _patch_row(self, enc: dict, enc_mods: list[str], patches: dict, ne: int) -> torch.Tensor | None:
        """(1, ne, patch_width) uint8: the chosen patches at their encoder slots, zeros elsewhere."""
        if not self.patch_dims:
            return None
        out = np.zeros((ne, self.patch_width), dtype=np.uint8)
        start = 0
        for m in enc_mods:
            k = len(enc[m][0])
            if m in self.patch_dims and m in patches:
                out[start : start + k, : self.patch_dims[m]] = patches[m][enc[m][1]]
            start += k
        return torch.from_numpy(out)[None]

    def _value_row(self, parts: dict, mods: list[str], values: dict, n: int, pos: int) -> torch.Tensor | None:
        """(1, n, value_width) fp32: the chosen continuous values at their slots (positions in
        ``parts[m][pos]``), zeros elsewhere; None without continuous modalities."""
        if not self.value_dims:
            return None
        out = np.zeros((n, self.value_width), dtype=np.float32)
        start = 0
        for m in mods:
            k = len(parts[m][pos])
            if m in self.value_dims:
                out[start : start + k, : self.value_dims[m]] = values[m][parts[m][pos]]
            start += k
        return torch.from_numpy(out)[None]

    def _pack(self, enc: dict, dec: dict, patches: dict) -> MultimodalBatch:
        cfg = self.config
        enc_mods = [m for m in self.order if m in enc]
        dec_mods = [m for m in self.order if m in dec]
        n_enc = sum(len(enc[m][0]) for m in enc_mods)
        n_dec = sum(len(dec[m][1]) for m in dec_mods)
        if n_enc > cfg.input_budget or n_dec > cfg.target_budget:  # pragma: no cover - invariant
            raise AssertionError(
                f"packed {n_enc}/{n_dec} tokens into budgets {cfg.input_budget}/{cfg.target_budget}"
            )
        ne = cfg.input_budget if cfg.pad_to_budget else max(n_enc, 1)  # an empty encoder keeps one padding slot
        nd = cfg.target_budget if cfg.pad_to_budget else n_dec

        def row(parts: list[np.ndarray], n: int) -> torch.Tensor:  # -> (1, n)
            flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            out = np.zeros(n, dtype=np.int64)
            out[: len(flat)] = flat
            return torch.from_numpy(out)[None]

        def modality_row(mods: list[str], parts: dict, k: int, n: int) -> torch.Tensor:
            return row([np.full(len(parts[m][k]), self.index[m], dtype=np.int64) for m in mods], n)

        enc_valid = torch.zeros(1, ne, dtype=torch.bool)
        enc_valid[0, :n_enc] = True
        dec_valid = torch.zeros(1, nd, dtype=torch.bool)
        dec_valid[0, :n_dec] = True
        return MultimodalBatch(
            enc_tokens=row([enc[m][0] for m in enc_mods], ne),
            enc_modality=modality_row(enc_mods, enc, 0, ne),
            enc_position=row([enc[m][1] for m in enc_mods], ne),
            enc_valid=enc_valid,
            dec_input=row([dec[m][0] for m in dec_mods], nd),
            dec_target=row([dec[m][1] for m in dec_mods], nd),
            dec_modality=modality_row(dec_mods, dec, 1, nd),
            dec_position=row([dec[m][2] for m in dec_mods], nd),
            dec_valid=dec_valid,
            enc_patches=self._patch_row(enc, enc_mods, patches, ne),
            enc_values=self._value_row(enc, enc_mods, patches, ne, 1),
            dec_values=self._value_row(dec, dec_mods, patches, nd, 2),
        )
