"""Tiny configs and hand-built packed batches shared by the model tests."""

from __future__ import annotations

import torch

from fourm.core.batch import MultimodalBatch
from fourm.model import FourM, FourMConfig, ModalityConfig

# order = modality index: 0 rgb, 1 depth, 2 caption, 3 meta
TOY_MODALITIES = {
    "rgb": ModalityConfig("image", 32, 16),
    "depth": ModalityConfig("image", 24, 9),
    "caption": ModalityConfig("sequence", 40, 12),
    "meta": ModalityConfig("vector", 16, 3),
}


def toy_config(**overrides) -> FourMConfig:
    """dim 32, 2+2 blocks, 4 heads over TOY_MODALITIES."""
    fields = {"dim": 32, "enc_depth": 2, "dec_depth": 2, "num_heads": 4, **overrides}
    modalities = fields.pop("modalities", TOY_MODALITIES)
    return FourMConfig.from_dict({**fields, "modalities": dict(modalities)})


def pack(samples: list[dict], ne: int | None = None, nd: int | None = None) -> MultimodalBatch:
    """Samples {"enc": [(mod, pos, token)], "dec": [(mod, pos, input, target)]} -> padded batch.

    Padding slots get garbage-free zeros; widths default to the longest sample."""
    ne = ne or max(len(s["enc"]) for s in samples)
    nd = nd or max(len(s["dec"]) for s in samples)
    b = len(samples)
    out = {
        name: torch.zeros(b, ne if name.startswith("enc") else nd, dtype=torch.bool if "valid" in name else torch.long)
        for name in (
            "enc_tokens", "enc_modality", "enc_position", "enc_valid",
            "dec_input", "dec_target", "dec_modality", "dec_position", "dec_valid",
        )
    }
    for i, s in enumerate(samples):
        for j, (mod, pos, tok) in enumerate(s["enc"]):
            out["enc_modality"][i, j], out["enc_position"][i, j], out["enc_tokens"][i, j] = mod, pos, tok
            out["enc_valid"][i, j] = True
        for j, (mod, pos, inp, tgt) in enumerate(s["dec"]):
            out["dec_modality"][i, j], out["dec_position"][i, j] = mod, pos
            out["dec_input"][i, j], out["dec_target"][i, j] = inp, tgt
            out["dec_valid"][i, j] = True
    return MultimodalBatch(**out)


def two_sample_batch() -> MultimodalBatch:
    """Two samples mixing all four modalities, with padding on both sides."""
    s0 = {
        "enc": [(0, 0, 5), (0, 3, 7), (2, 0, 11), (2, 1, 12), (3, 1, 2)],
        "dec": [(0, 1, 0, 9), (0, 2, 0, 31), (1, 4, 0, 3), (2, 0, 1, 20), (2, 1, 20, 21), (2, 2, 21, 22)],
    }
    s1 = {
        "enc": [(1, 0, 1), (1, 8, 23), (3, 0, 4)],
        "dec": [(2, 0, 1, 7), (2, 1, 7, 8), (2, 2, 8, 39), (2, 3, 39, 4), (3, 2, 0, 15)],
    }
    return pack([s0, s1], ne=7, nd=8)


def patch_batch(pix_index: int, patch_dim: int, seed: int = 0) -> MultimodalBatch:
    """A batch with a patch modality (index ``pix_index``, ``patch_dim`` 8-bit values per patch): rgb
    tokens + patches at grid cells 2, 7, 9 (sample 0); patches at cells 0, 15 (sample 1), then padding."""
    s0 = {"enc": [(0, 0, 5), (pix_index, 2, 0), (pix_index, 7, 0), (pix_index, 9, 0)], "dec": [(1, 0, 0, 3)]}
    s1 = {"enc": [(pix_index, 0, 0), (pix_index, 15, 0)], "dec": [(1, 1, 0, 2)]}
    b = pack([s0, s1], ne=5)
    g = torch.Generator().manual_seed(seed)
    patches = torch.randint(0, 256, (2, 5, patch_dim), generator=g, dtype=torch.uint8)
    b.enc_patches = patches * (b.enc_valid & (b.enc_modality == pix_index))[..., None]
    return b


def backward_and_reload(model: FourM, batch: MultimodalBatch, out) -> tuple[torch.nn.Module, FourM]:
    """One training loss + backward on ``batch``, then save ``model`` to ``out`` and load it back;
    checks the reloaded model encodes ``batch`` as ``model`` does. Returns (the "pix" stem, with its
    gradients; the reloaded model)."""
    model.train()
    loss, _ = model.loss(batch)
    loss.backward()
    model.eval().save_pretrained(out)
    loaded = FourM.from_pretrained(out).eval()
    args = (batch.enc_tokens, batch.enc_modality, batch.enc_position, batch.enc_valid, batch.enc_patches)
    torch.testing.assert_close(loaded.encode(*args), model.encode(*args))
    return model.embeddings.patch_embed["pix"], loaded
