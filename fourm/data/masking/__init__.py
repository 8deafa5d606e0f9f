"""4M multimodal masking: Dirichlet token budgets, T5-style span masking, packed encoder/decoder rows.

Typical use::

    cfg = MaskingConfig.from_file("configs/masking/mixture.yaml")
    masker = Masker(cfg, modality_order, kinds, specials)
    loader = DataLoader(MaskedDataset(token_samples, masker), batch_size=64, collate_fn=collate)
"""

from fourm.data.masking.budgets import allocate, dirichlet_budgets, draw_shares
from fourm.data.masking.collate import MaskedDataset, collate, make_rng
from fourm.data.masking.config import AlphaConfig, MaskingConfig
from fourm.data.masking.masker import KINDS, Masker
from fourm.data.masking.spans import SequenceSpecialTokens, SpanMasked, span_mask, unmask_spans

__all__ = [
    "KINDS",
    "AlphaConfig",
    "MaskedDataset",
    "Masker",
    "MaskingConfig",
    "SequenceSpecialTokens",
    "SpanMasked",
    "allocate",
    "collate",
    "dirichlet_budgets",
    "draw_shares",
    "make_rng",
    "span_mask",
    "unmask_spans",
]
