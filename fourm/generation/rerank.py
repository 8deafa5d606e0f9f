"""Best-of-n by the reverse task: the any-to-any model checks its own candidates.

A target sampled ``candidates`` times (e.g. boxes from a caption) is kept in the version under
which the model finds the given conditions most likely (log p(caption | boxes, box map, the other
conditions)), the reverse direction of the same model acting as a verifier. Relations that the
forward sampler drops ("to the left of" from boxes that overlap) cost likelihood in reverse. A
candidate image is read as the model reads images: through its pixel patches where the pipeline
gives a reader for them (``generate_chained``'s ``verify``), not through its own tokens.

* :func:`log_likelihood`: teacher-forced log p of a given modality's tokens, summed over its valid
  tokens (B,). Sequences are scored causally ([SOS] + previous tokens as decoder input); image and
  vector modalities with every position queried at once, none known (as MaskGIT's first step).
* :func:`choose`: per sample, the candidate of highest score, as one (B, n) batch.
* :func:`automatic_rerank_by`: what scores a target's candidates when ``rerank_by`` is not set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fourm.errors import FourmError
from fourm.generation.conditions import GivenTokens, encoder_inputs
from fourm.generation.decoding import TargetHead
from fourm.model.fourm import FourM


def automatic_rerank_by(config, name: str, given: Sequence[str]) -> list[str]:
    """The given conditions that score target ``name``'s candidates by default: those the model
    predicts as discrete tokens (a caption, boxes), never ``name`` itself. Empty (e.g. only an image
    read as pixel patches): nothing can tell the candidates apart."""
    return [m for m in given if m != name and config.modalities[m].target and not config.modalities[m].is_continuous]


def log_likelihood(
    model: FourM, conditions: Mapping[str, GivenTokens], name: str, scored: GivenTokens, sos: int
) -> Tensor:
    """log p(``scored`` tokens of modality ``name`` | ``conditions``) summed over its valid tokens -> (B,) fp32."""
    config = model.config
    mod = config.modalities[name]
    if name in conditions:
        raise FourmError(f"cannot score '{name}' given itself: leave it out of the conditions")
    b = scored.batch_size
    device = scored.tokens.device
    enc = encoder_inputs(config, conditions, b, device).compact()
    context = enc.encode_with(model)  # (B, Ne, D)
    tokens, positions, valid = scored.tokens, scored.positions, scored.valid
    if mod.causal:  # decoder input: [SOS] then the previous tokens
        inputs = torch.cat([torch.full_like(tokens[:, :1], sos), tokens[:, :-1]], dim=1)
    else:  # every position a query, nothing known
        inputs = torch.zeros_like(tokens)
    index = config.modality_index(name)
    hidden = model.decode(
        context, enc.valid, inputs, torch.full_like(tokens, index), positions, torch.ones_like(valid)
    )  # (B, n, D)
    logp = F.log_softmax(TargetHead(model, name)(hidden), dim=-1)  # (B, n, V) fp32
    picked = logp.gather(-1, tokens[..., None]).squeeze(-1)  # (B, n)
    return picked.masked_fill(~valid, 0.0).sum(dim=1)


def choose(candidates: Sequence[GivenTokens], scores: Tensor, pad: int = 0) -> tuple[GivenTokens, Tensor]:
    """Per sample, the candidate of highest score (K candidates of (B, n_k), scores (K, B)) ->
    (the chosen GivenTokens (B, max n_k), padded with ``pad`` / invalid; index (B,) of the candidate)."""
    if len(candidates) != scores.shape[0]:
        raise FourmError(f"{len(candidates)} candidates but {scores.shape[0]} rows of scores")
    width = max(c.tokens.shape[1] for c in candidates)

    def padded(t: Tensor, value) -> Tensor:
        return F.pad(t, (0, width - t.shape[1]), value=value)

    tokens = torch.stack([padded(c.tokens, pad) for c in candidates])  # (K, B, n)
    positions = torch.stack([padded(c.positions, 0) for c in candidates])
    valid = torch.stack([padded(c.valid, False) for c in candidates])
    best = scores.argmax(dim=0)  # (B,)
    rows = torch.arange(best.shape[0], device=best.device)
    return GivenTokens(tokens[best, rows], positions[best, rows], valid[best, rows]), best
