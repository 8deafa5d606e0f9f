"""Per-sample 4M multimodal masking: a token sample -> one packed row of encoder and decoder tokens.

For each sample (``dict[modality -> LongTensor]``, modalities may be missing):

1. pick an alpha entry from the mixture (by weight; the heaviest one in deterministic mode) and
   draw Dirichlet shares over the present modalities allowed as inputs, and separately as targets
   (deterministic mode: the Dirichlet mean). If every present modality has alpha 0 on a side the
   shares fall back to uniform;
2. split ``input_budget`` with the input shares (availability = number of tokens), then
   ``target_budget`` with the target shares (an image's availability = its tokens not already
   used as inputs), see :mod:`fourm.data.masking.budgets`;
3. sequences: input budget only -> whole sequence as input; target budget only -> whole sequence
   as target (decoder input = [SOS] + target[:-1]); both -> span masking (:mod:`.spans`) with
   ``noise_density`` (or, if null, target / (input + target) budget). The encoder part uses its
   real length (clipped by ``max_input_tokens`` and the budget left); the decoder part is
   truncated to its target budget (a prefix, so causal teacher forcing stays consistent);
4. image-like / vector modalities share what the sequences left of both budgets (same shares,
   water-filled again), and get a random subset of positions as inputs and a disjoint random
   subset as targets.

Packing: modalities in ``modality_order``; image positions ascending; sequence positions are the
index in the encoder-side / decoder-side sequence. Unused slots are padding (valid False, ids 0).
Exactly ``input_budget`` / ``target_budget`` tokens are valid whenever the sample has enough.

Patch modalities (``patch_dims``: name -> P, :mod:`fourm.data.patches`) are image modalities whose
sample is N pixel patches, flat (N * P,) or (N, P). They are inputs only (never targets, whatever
the config says), budgeted by patches (N) and positioned like any image; their encoder slots get
token id 0 and the chosen patches go to ``enc_patches`` (1, Ne, max P) uint8, in slot order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from fourm.data.batch import MultimodalBatch
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


class Masker:
    """Callable ``(token sample, np.random.Generator) -> MultimodalBatch`` of batch size 1."""

    def __init__(
        self,
        config: MaskingConfig,
        modality_order: Sequence[str],
        kinds: Mapping[str, str],
        specials: SequenceSpecialTokens | None = None,
        patch_dims: Mapping[str, int] | None = None,
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
        self.patch_dims = self._check_patch_dims(patch_dims or {})
        self.patch_width = max(self.patch_dims.values(), default=0)
        self.index = {m: i for i, m in enumerate(self.order)}
        self.inputs = set(config.input_set(self.order))
        self.targets = set(config.target_set(self.order)) - set(self.patch_dims)  # patches: input only
        weights = np.array([e.weight for e in config.mixture], dtype=np.float64)
        self.mixture_probs = weights / weights.sum()

    def _check_patch_dims(self, patch_dims: Mapping[str, int]) -> dict[str, int]:
        for m, p in patch_dims.items():
            if m not in self.kinds:
                raise FourmError(f"patch_dims: unknown modality '{m}' (modality order: {', '.join(self.order)})")
            if self.kinds[m] != "image":
                raise FourmError(f"patch_dims: modality '{m}' is a {self.kinds[m]}, patch modalities are images")
            if int(p) < 1:
                raise FourmError(f"patch_dims.{m} must be >= 1, got {p}")
        return {m: int(patch_dims[m]) for m in self.order if m in patch_dims}

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

    # ---- sequences -----------------------------------------------------------------------------
    def _mask_sequence(self, seq: np.ndarray, b_in: int, b_tg: int, rng: np.random.Generator):
        """-> (encoder tokens, decoder input, decoder target), each (L,) int64 (possibly empty)."""
        sp = self.specials
        empty = np.zeros(0, dtype=np.int64)
        num_content = len(seq) - int(len(seq) > 0 and seq[-1] == sp.eos)
        if b_in > 0 and b_tg > 0 and num_content > 0:
            density = self.config.noise_density or b_tg / (b_in + b_tg)
            out = span_mask(seq, density, self.config.mean_span_length, sp, rng)
            return out.encoder_input, out.decoder_input, out.decoder_target
        if b_in > 0:
            return seq, empty, empty
        if b_tg > 0:
            return empty, np.concatenate([[sp.sos], seq[:-1]]).astype(np.int64), seq
        return empty, empty, empty

    # ---- main ----------------------------------------------------------------------------------
    def __call__(self, sample: Mapping[str, torch.Tensor], rng: np.random.Generator) -> MultimodalBatch:
        """Mask one token sample with ``rng`` (see the module docstring)."""
        cfg = self.config
        tokens, patches = {}, {}
        for m in self.order:
            t = sample.get(m)
            if t is not None and len(t) > 0:
                if m in self.patch_dims:  # patch slots carry token id 0, their patches go to enc_patches
                    patches[m] = self._patches(m, t)
                    tokens[m] = np.zeros(len(patches[m]), dtype=np.int64)
                else:
                    tokens[m] = _as_numpy(t)
        if not tokens:
            raise FourmError(
                f"token sample has none of the modalities {', '.join(self.order)} (keys: {list(sample)})"
            )
        entry = self.pick_entry(rng)
        in_mods = [m for m in tokens if m in self.inputs]
        tg_mods = [m for m in tokens if m in self.targets]
        in_shares = dict(zip(in_mods, self._shares(entry, "input", in_mods, rng)))
        tg_shares = dict(zip(tg_mods, self._shares(entry, "target", tg_mods, rng)))

        # first pass over all modalities: decides what the sequences get
        b_in = self._allocate(
            "input",
            cfg.input_budget,
            in_mods,
            np.array(list(in_shares.values())),
            [len(tokens[m]) for m in in_mods],
        )
        tg_avail = [len(tokens[m]) - (b_in.get(m, 0) if self.kinds[m] != "sequence" else 0) for m in tg_mods]
        b_tg = self._allocate(
            "target", cfg.target_budget, tg_mods, np.array(list(tg_shares.values())), tg_avail
        )

        enc: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # modality -> (tokens, positions)
        dec: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # -> (input, target, positions)
        left_in, left_tg = cfg.input_budget, cfg.target_budget
        for m in tokens:
            if self.kinds[m] != "sequence":
                continue
            e, di, dt = self._mask_sequence(tokens[m], b_in.get(m, 0), b_tg.get(m, 0), rng)
            e = e[: min(left_in, cfg.max_input_tokens.get(m, _BIG))]
            n_dec = min(len(dt), b_tg.get(m, 0), left_tg)
            di, dt = di[:n_dec], dt[:n_dec]
            left_in, left_tg = left_in - len(e), left_tg - n_dec
            if len(e):
                enc[m] = (e, np.arange(len(e)))
            if n_dec:
                dec[m] = (di, dt, np.arange(n_dec))

        # second pass: image-like / vector modalities share what is left
        grid_in = [m for m in in_mods if self.kinds[m] != "sequence"]
        grid_tg = [m for m in tg_mods if self.kinds[m] != "sequence"]
        g_in = self._allocate(
            "input",
            left_in,
            grid_in,
            np.array([in_shares[m] for m in grid_in]),
            [len(tokens[m]) for m in grid_in],
        )
        g_tg = self._allocate(
            "target",
            left_tg,
            grid_tg,
            np.array([tg_shares[m] for m in grid_tg]),
            [len(tokens[m]) - g_in.get(m, 0) for m in grid_tg],
        )
        for m in tokens:
            if self.kinds[m] == "sequence":
                continue
            n_in, n_tg = g_in.get(m, 0), g_tg.get(m, 0)
            if not n_in and not n_tg:
                continue
            perm = rng.permutation(len(tokens[m]))
            pos_in, pos_tg = np.sort(perm[:n_in]), np.sort(perm[n_in : n_in + n_tg])
            if n_in:
                enc[m] = (tokens[m][pos_in], pos_in)
            if n_tg:
                dec[m] = (np.zeros(n_tg, dtype=np.int64), tokens[m][pos_tg], pos_tg)
        return self._pack(enc, dec, patches)

    def _patch_row(self, enc: dict, enc_mods: list[str], patches: dict, ne: int) -> torch.Tensor | None:
        """(1, ne, patch_width) uint8: the chosen patches at their encoder slots, zeros elsewhere."""
        if not self.patch_dims:
            return None
        out = np.zeros((ne, self.patch_width), dtype=np.uint8)
        start = 0
        for m in enc_mods:
            k = len(enc[m][0])
            if m in patches:
                out[start : start + k, : self.patch_dims[m]] = patches[m][enc[m][1]]
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
        ne = cfg.input_budget if cfg.pad_to_budget else n_enc
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
        )
