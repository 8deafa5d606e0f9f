"""Test helpers: a tiny random checkpoint in ml-4m's FM format, and an independent forward pass.

The checkpoint follows the layout ml-4m's ``FM`` class saves through huggingface_hub's
PyTorchModelHubMixin (``config.json`` with its constructor keywords, ``model.safetensors`` with its
state dict, including the persistent buffers: fixed ``pos_emb`` tables and the zero ``bias`` of its
bias-free LayerNorms). The forward pass below is written from the computation of the 4M paper and
ml-4m's model (per-modality embeddings, masked token selection, projected decoder context with a
per-block context norm, cumulative-sum decoder masks restricted to each modality); it shares no
code with fourm's model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])

DIM, HEADS, DEPTH_E, DEPTH_D = 64, 4, 2, 2
IMAGE_SIZE, PATCH = 32, 8  # 4x4 grids
VOCAB = {"tok_rgb@32": 50, "caption": 40, "det": 40, "tok_dinov2_global": 30}
SEQ_LEN = {"caption": 12, "det": 10}
GLOBAL_TOKENS = 4  # 2x2, learned positions


def sincos_1d(n: int, dim: int) -> Tensor:
    omega = 1.0 / (10000.0 ** (torch.arange(dim // 2, dtype=torch.float32) / (dim // 2)))
    out = torch.arange(n, dtype=torch.float32)[:, None] * omega[None]
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_2d(side: int, dim: int) -> Tensor:
    """Row index in the first half of the features, column index in the second half."""
    idx = torch.arange(side * side)
    quarter = dim // 4
    omega = 1.0 / (10000.0 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    r = (idx // side).float()[:, None] * omega
    c = (idx % side).float()[:, None] * omega
    return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1)


def ml4m_config(share_modality_embeddings: bool | None = False, qk_norm: bool = False, **extra) -> dict:
    cfg = {
        "domains_in": ["caption", "t5_caption", "rgb@32", "tok_rgb@32", "tok_dinov2_global"],
        "domains_out": ["caption", "t5_caption", "det", "tok_rgb@32", "tok_dinov2_global"],
        "encoder_depth": DEPTH_E,
        "decoder_depth": DEPTH_D,
        "dim": DIM,
        "num_heads": HEADS,
        "mlp_ratio": 4,
        "qkv_bias": False,
        "proj_bias": False,
        "mlp_bias": False,
        "norm_bias": False,
        "act_layer": "SiLU",
        "gated_mlp": True,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
    }
    if qk_norm:
        cfg["qk_norm"] = True
    if share_modality_embeddings is not None:
        cfg["share_modality_embeddings"] = share_modality_embeddings
    cfg.update(extra)
    return cfg


def hidden_dim(cfg: dict) -> int:
    return int(2 * int(cfg["dim"] * cfg["mlp_ratio"]) / 3)


def random_state(cfg: dict, seed: int = 0) -> dict[str, Tensor]:
    """A random state dict in ml-4m's key layout (shared modality embeddings: one tensor object)."""
    g = torch.Generator().manual_seed(seed)
    d, h = cfg["dim"], hidden_dim(cfg)
    hd = d // cfg["num_heads"]

    def rnd(*shape: int, std: float = 0.1) -> Tensor:
        return torch.randn(*shape, generator=g) * std

    def norm(prefix: str, n: int = d) -> None:
        s[prefix + ".weight"] = 1.0 + rnd(n)
        s[prefix + ".bias"] = torch.zeros(n)  # bias-free LayerNorm: zero buffer

    s: dict[str, Tensor] = {}
    side = IMAGE_SIZE // PATCH
    ins, outs = set(cfg["domains_in"]), set(cfg["domains_out"])
    for side_name, mods in (("encoder", ins), ("decoder", outs)):
        for m in sorted(mods):
            p = f"{side_name}_embeddings.{m}."
            if m == "t5_caption":
                if side_name == "decoder":
                    continue  # ml-4m has no decoder embedding for T5 embeddings
                s[p + "pos_emb"] = sincos_1d(77, d)[None]
                s[p + "mod_emb"] = rnd(1, 1, d)
                s[p + "emb_proj.weight"] = rnd(d, 4096)
                s[p + "emb_proj.bias"] = rnd(d)
                continue
            if m == "rgb@32":
                s[p + "pos_emb"] = sincos_2d(side, d)[None]
                s[p + "mod_emb"] = rnd(1, 1, d)
                s[p + "proj.weight"] = rnd(d, 3 * PATCH * PATCH, std=0.05)
                continue
            if m in SEQ_LEN:
                s[p + "pos_emb"] = sincos_1d(SEQ_LEN[m], d)[None]
            elif m == "tok_dinov2_global":
                s[p + "pos_emb"] = rnd(1, GLOBAL_TOKENS, d, std=0.5)  # learned
            else:
                s[p + "pos_emb"] = sincos_2d(side, d)[None]
            s[p + "mod_emb"] = rnd(1, 1, d)
            s[p + "token_emb.weight"] = rnd(VOCAB[m], d, std=0.5)
            if side_name == "decoder":
                s[p + "to_logits.weight"] = rnd(VOCAB[m], d, std=0.5)
    if cfg.get("share_modality_embeddings", True):
        for m in ins & outs:
            if f"decoder_embeddings.{m}.mod_emb" in s:
                s[f"decoder_embeddings.{m}.mod_emb"] = s[f"encoder_embeddings.{m}.mod_emb"]
    for b in range(cfg["encoder_depth"]):
        p = f"encoder.{b}."
        norm(p + "norm1")
        s[p + "attn.qkv.weight"] = rnd(3 * d, d)
        s[p + "attn.proj.weight"] = rnd(d, d)
        if cfg.get("qk_norm"):
            norm(p + "attn.q_norm", hd)
            norm(p + "attn.k_norm", hd)
        norm(p + "norm2")
        s[p + "mlp.fc1.weight"] = rnd(h, d)
        s[p + "mlp.fc2.weight"] = rnd(d, h)
        s[p + "mlp.fc3.weight"] = rnd(h, d)
    norm("encoder_norm")
    s["decoder_proj_context.weight"] = rnd(d, d)
    s["decoder_proj_context.bias"] = rnd(d)
    for b in range(cfg["decoder_depth"]):
        p = f"decoder.{b}."
        norm(p + "norm1")
        s[p + "self_attn.qkv.weight"] = rnd(3 * d, d)
        s[p + "self_attn.proj.weight"] = rnd(d, d)
        norm(p + "query_norm")
        norm(p + "context_norm")
        s[p + "cross_attn.q.weight"] = rnd(d, d)
        s[p + "cross_attn.kv.weight"] = rnd(2 * d, d)
        s[p + "cross_attn.proj.weight"] = rnd(d, d)
        if cfg.get("qk_norm"):
            for a in ("self_attn", "cross_attn"):
                norm(p + a + ".q_norm", hd)
                norm(p + a + ".k_norm", hd)
        norm(p + "norm2")
        s[p + "mlp.fc1.weight"] = rnd(h, d)
        s[p + "mlp.fc2.weight"] = rnd(d, h)
        s[p + "mlp.fc3.weight"] = rnd(h, d)
    norm("decoder_norm")
    s["mask_token"] = rnd(1, 1, d)
    return s


def write_checkpoint(path: Path, cfg: dict, state: dict[str, Tensor], dedup_shared: bool = True) -> Path:
    """config.json + model.safetensors. ``dedup_shared``: tensors shared in memory are stored once,
    under the alphabetically first name (what safetensors' save_model does)."""
    path.mkdir(parents=True, exist_ok=True)
    out, seen = {}, {}
    for k in sorted(state):
        t = state[k]
        if dedup_shared and id(t) in seen:
            continue
        seen[id(t)] = k
        out[k] = t.contiguous().clone()
    save_file(out, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(cfg))
    return path


# ------------------------------------------------------------------------------ reference forward
def _ln(x: Tensor, w: Tensor, eps: float = 1e-6) -> Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w


def _attn(q: Tensor, k: Tensor, v: Tensor, blocked: Tensor, heads: int, s: dict, p: str, qk_norm: bool) -> Tensor:
    """q (B, N, D), k/v (B, M, D) already projected; blocked (B, N or 1, M) True = may not attend."""
    b, n, d = q.shape
    m = k.shape[1]
    hd = d // heads
    q = q.view(b, n, heads, hd).transpose(1, 2)
    k = k.view(b, m, heads, hd).transpose(1, 2)
    v = v.view(b, m, heads, hd).transpose(1, 2)
    if qk_norm:
        q, k = _ln(q, s[p + "q_norm.weight"]), _ln(k, s[p + "k_norm.weight"])
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
    scores = scores.masked_fill(blocked[:, None], -torch.finfo(scores.dtype).max)
    out = scores.softmax(-1) @ v
    return out.transpose(1, 2).reshape(b, n, d) @ s[p + "proj.weight"].T


def _mlp(x: Tensor, s: dict, p: str) -> Tensor:
    return (F.silu(x @ s[p + "fc1.weight"].T) * (x @ s[p + "fc3.weight"].T)) @ s[p + "fc2.weight"].T


def _select(parts: list[tuple[Tensor, ...]], masks: list[Tensor], num: int) -> tuple[list[Tensor], Tensor]:
    """Concatenate per-modality tensors, keep ``num`` tokens per sample, unmasked first (stable)."""
    mask = torch.cat(masks, dim=1)
    order = torch.argsort(mask.float() + torch.arange(mask.shape[1])[None] * 1e-6, dim=1)[:, :num]
    out = []
    for i in range(len(parts[0])):
        t = torch.cat([p[i] for p in parts], dim=1)
        idx = order if t.dim() == 2 else order[..., None].expand(-1, -1, t.shape[2])
        out.append(torch.gather(t, 1, idx))
    return out, torch.gather(mask, 1, order)


def reference_forward(cfg: dict, s: dict[str, Tensor], enc: dict, dec: dict, num_enc: int, num_dec: int):
    """ml-4m's forward in eval mode. ``enc``: {modality: {"tensor", "input_mask"}} (image tokens
    (B, N), sequences (B, L), pixels (B, 3, H, W) in [0, 1]); ``dec``: {modality: {"tensor",
    "target_mask"}}; masks True = not used. Returns (encoder output (B, num_enc, D), encoder mask
    (B, num_enc), {modality: logits of its unmasked decoder tokens (n, V), row-major}).
    Modalities are concatenated in reverse name order (the result must not depend on it)."""
    heads, qk = cfg["num_heads"], bool(cfg.get("qk_norm", False))
    mod_id = {m: i for i, m in enumerate(sorted(set(cfg["domains_in"]) | set(cfg["domains_out"])))}
    parts, masks = [], []
    for m in sorted(enc, reverse=True):
        d, p = enc[m], f"encoder_embeddings.{m}."
        t, mask = d["tensor"], d["input_mask"]
        if m.startswith("rgb"):
            x = (t - MEAN[None, :, None, None]) / STD[None, :, None, None]
            b, c, hh, ww = x.shape
            g = hh // PATCH
            x = x.reshape(b, c, g, PATCH, g, PATCH).permute(0, 2, 4, 3, 5, 1).reshape(b, g * g, PATCH * PATCH * c)
            tok = x @ s[p + "proj.weight"].T
            emb = (s[p + "pos_emb"] + s[p + "mod_emb"]).expand(b, -1, -1)
        elif m in SEQ_LEN:
            tok = s[p + "token_emb.weight"][t]
            pos_id = ((~mask).long().cumsum(1) - 1).clamp(min=0)
            emb = s[p + "pos_emb"][0][pos_id] * (~mask)[..., None] + s[p + "mod_emb"]
        else:
            tok = s[p + "token_emb.weight"][t]
            emb = (s[p + "pos_emb"] + s[p + "mod_emb"]).expand(t.shape[0], -1, -1)
        key = mod_id[m] * 1000 + torch.arange(tok.shape[1]).expand(tok.shape[0], -1)
        parts.append((tok, emb, key))
        masks.append(mask)
    (tok, emb, keys), emask = _select(parts, masks, num_enc)
    tok, emb = tok.masked_fill(emask[..., None], 0.0), emb.masked_fill(emask[..., None], 0.0)
    x = tok + emb
    blocked = emask[:, None, :]
    for b in range(cfg["encoder_depth"]):
        p = f"encoder.{b}."
        hN = _ln(x, s[p + "norm1.weight"])
        q, k, v = (hN @ s[p + "attn.qkv.weight"].T).chunk(3, dim=-1)
        x = x + _attn(q, k, v, blocked, heads, s, p + "attn.", qk)
        x = x + _mlp(_ln(x, s[p + "norm2.weight"]), s, p + "mlp.")
    enc_out = _ln(x, s["encoder_norm.weight"])
    context = enc_out @ s["decoder_proj_context.weight"].T + s["decoder_proj_context.bias"] + emb

    parts, masks = [], []
    mask_token = s["mask_token"]
    for m in sorted(dec, reverse=True):
        d, p = dec[m], f"decoder_embeddings.{m}."
        ids, tm = d["tensor"], d["target_mask"]
        mid = torch.full_like(ids, mod_id[m])
        if m in SEQ_LEN:
            pos_id = ((~tm).long().cumsum(1) - 1).clamp(min=0)
            emb = s[p + "pos_emb"][0][pos_id] * (~tm)[..., None] + s[p + "mod_emb"]
            tok = s[p + "token_emb.weight"][ids]
            compressed = (~tm).long()  # strictly causal within the target sequence
            parts.append((tok[:, :-1], emb[:, :-1], ids[:, 1:], compressed[:, :-1], mid[:, :-1]))
            masks.append(tm[:, 1:] | tm[:, :-1])
        else:
            emb = (s[p + "pos_emb"] + s[p + "mod_emb"]).expand(ids.shape[0], -1, -1)
            tok = mask_token.expand(ids.shape[0], ids.shape[1], -1)
            compressed = torch.zeros_like(ids)
            for i in range(ids.shape[0]):  # first target token holds the count: all see each other
                first = int((~tm[i]).nonzero()[0])
                compressed[i, first] = int((~tm[i]).sum())
            parts.append((tok, emb, ids, compressed, mid))
            masks.append(tm)
    (tok, emb, target, compressed, mids), dmask = _select(parts, masks, num_dec)
    tok, emb = tok.masked_fill(dmask[..., None], 0.0), emb.masked_fill(dmask[..., None], 0.0)
    n = tok.shape[1]
    sa_blocked = torch.arange(n)[None, None, :] >= compressed.cumsum(1)[:, :, None]
    sa_blocked = sa_blocked | (mids[:, None, :] != mids[:, :, None])
    y = tok + emb
    for b in range(cfg["decoder_depth"]):
        p = f"decoder.{b}."
        hN = _ln(y, s[p + "norm1.weight"])
        q, k, v = (hN @ s[p + "self_attn.qkv.weight"].T).chunk(3, dim=-1)
        y = y + _attn(q, k, v, sa_blocked, heads, s, p + "self_attn.", qk)
        qN = _ln(y, s[p + "query_norm.weight"]) @ s[p + "cross_attn.q.weight"].T
        cN = _ln(context, s[p + "context_norm.weight"])
        k, v = (cN @ s[p + "cross_attn.kv.weight"].T).chunk(2, dim=-1)
        y = y + _attn(qN, k, v, blocked, heads, s, p + "cross_attn.", qk)
        y = y + _mlp(_ln(y, s[p + "norm2.weight"]), s, p + "mlp.")
    y = _ln(y, s["decoder_norm.weight"])
    logits = {}
    for m in dec:
        here = (mids == mod_id[m]) & ~dmask
        logits[m] = y[here] @ s[f"decoder_embeddings.{m}.to_logits.weight"].T
    return enc_out, emask, keys, logits
