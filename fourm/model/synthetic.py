"""Random packed batches that follow the masking contract, for tests, benchmarks and smoke runs."""

from __future__ import annotations

import random

import torch

from fourm.core.batch import MultimodalBatch
from fourm.model.config import FourMConfig


def _spread(total: int, capacity: dict[int, int], rng: random.Random) -> dict[int, int]:
    """Split ``total`` tokens over modalities with random weights, never above their capacity."""
    weights = {m: rng.random() + 0.05 for m, c in capacity.items() if c > 0}
    counts = dict.fromkeys(capacity, 0)
    for _ in range(total):
        open_mods = [m for m in weights if counts[m] < capacity[m]]
        if not open_mods:
            break
        m = rng.choices(open_mods, weights=[weights[k] for k in open_mods])[0]
        counts[m] += 1
    return counts


def random_batch(
    config: FourMConfig, batch_size: int, num_input: int, num_target: int, seed: int = 0
) -> MultimodalBatch:
    """A (batch_size, num_input) / (batch_size, num_target) packed batch with random budgets.

    Image/vector modalities get disjoint random input and target positions; sequences get
    ``0..n-1`` positions on each side and teacher-forced decoder inputs (id 0 as start token).
    Samples whose modalities cannot fill a budget are right-padded.
    """
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    mods = list(config.modalities.values())
    rows = []
    for _ in range(batch_size):
        n_in = _spread(num_input, {i: m.length if m.input else 0 for i, m in enumerate(mods)}, rng)
        tg_cap = {
            i: (m.length if m.causal else m.length - n_in[i]) if m.target else 0 for i, m in enumerate(mods)
        }
        n_tg = _spread(num_target, tg_cap, rng)
        enc = {k: [] for k in ("tokens", "modality", "position")}
        dec = {k: [] for k in ("input", "target", "modality", "position")}
        for i, m in enumerate(mods):
            e, d = n_in[i], n_tg[i]
            if m.causal:
                pos_in, pos_tg = torch.arange(e), torch.arange(d)
            else:
                perm = torch.randperm(m.length, generator=gen)
                pos_in, pos_tg = perm[:e].sort().values, perm[e : e + d].sort().values
            enc["tokens"].append(torch.randint(m.vocab_size, (e,), generator=gen))
            enc["modality"].append(torch.full((e,), i))
            enc["position"].append(pos_in)
            target = torch.randint(m.vocab_size, (d,), generator=gen)
            dec["target"].append(target)
            dec["input"].append(torch.cat([target.new_zeros(1), target[:-1]])[:d] if m.causal else torch.zeros(d, dtype=torch.long))
            dec["modality"].append(torch.full((d,), i))
            dec["position"].append(pos_tg)
        enc = {k: torch.cat(v).long() for k, v in enc.items()}
        dec = {k: torch.cat(v).long() for k, v in dec.items()}
        rows.append(
            MultimodalBatch(
                enc_tokens=enc["tokens"],
                enc_modality=enc["modality"],
                enc_position=enc["position"],
                enc_valid=torch.ones(len(enc["tokens"]), dtype=torch.bool),
                dec_input=dec["input"],
                dec_target=dec["target"],
                dec_modality=dec["modality"],
                dec_position=dec["position"],
                dec_valid=torch.ones(len(dec["target"]), dtype=torch.bool),
            )
        )
    return MultimodalBatch.collate(rows).pad_to(num_input, num_target)
