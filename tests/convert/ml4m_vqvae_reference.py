"""Test helpers: tiny random VQ-VAE tokenizers in ml-4m's checkpoint layout, and an independent
reference computation.

The checkpoints follow what ml-4m's ``VQVAE`` class saves through huggingface_hub's
PyTorchModelHubMixin: ``config.json`` with its constructor keywords and ``model.safetensors`` with its
state dict (``cls_emb``, ``encoder.{proj, pos_emb, blocks.<i>.{norm1, attn.qkv, attn.proj, norm2,
mlp.fc1, mlp.fc2}, norm_mlp, post_mlp}``, ``quant_proj`` (1x1 conv), ``quantize._codebook.{embed,
initted, cluster_size[, embed_avg]}`` or ``quantize.{codes, to_k.weight, to_v.weight}``,
``post_quant_proj``, ``decoder.{..., out_proj, out_conv.<k>.{dwconv, norm, pwconv1, pwconv2, gamma}}``;
MLP backbones ``{linear_in, blocks.<i>.block.{0,2}, layernorms.<i>, layers.<i>, linear_out}``).
The ViT presets (512 / 768 / 1024 wide) are too big for tests: they use :data:`TINY_VIT` for
``vit_b`` (the converter's preset table is patched to match).

The reference below is written with plain torch ops from the computation of these tokenizers
(convolutions for the patch and 1x1 projections, explicit softmax attention, ``cdist`` for the
euclidean codebook); it shares no code with fourm's implementation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

TINY_VIT = (32, 2, 2)  # width, depth, heads used for "vit_b_enc" / "vit_b_dec" in these tests
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])

CASES: dict[str, dict] = {
    # semantic segmentation: label embedding, post MLP, cosine codes; trained at 64 px, used at 32 px
    "semseg": dict(image_size=64, n_channels=6, n_labels=7, enc_type="vit_b_enc", dec_type="vit_b_dec",
                   post_mlp=True, patch_size=8, quant_type="lucid", codebook_size=40, latent_dim=8,
                   norm_codes=True, sync_codebook=True, ema_decay=0.99, threshold_ema_dead_code=0.5),
    # CLIP-like feature maps: 1x1 projection, euclidean codes on l2-normalised latents
    "features": dict(image_size=64, n_channels=10, enc_type="vit_b_enc", dec_type="vit_b_dec", patch_proj=False,
                     patch_size=16, quant_type="lucid", codebook_size=30, latent_dim=6, norm_codes=False,
                     norm_latents=True),
    # pixels: ImageNet-standardised input mapped back to [-1, 1], ConvNeXt blocks after the head
    "pixels": dict(image_size=32, n_channels=3, enc_type="vit_b_enc", dec_type="vit_b_dec", patch_size=8,
                   undo_std=True, out_conv=True, quant_type="lucid", codebook_size=24, latent_dim=8,
                   norm_codes=False),
    # global feature vectors: bottleneck MLPs and the multi-head memcodes quantizer
    "global": dict(n_channels=12, enc_type="BottleneckMLP/B_2-Wi_16", dec_type="BottleneckMLP/B_2-Wi_16",
                   quant_type="memcodes", codebook_size=20, num_codebooks=4, latent_dim=16),
    # plain MLPs (no activation), cosine codes
    "plain_mlp": dict(n_channels=5, enc_type="MLP/B_3-Wi_8-Ex_2", dec_type="MLP/B_3-Wi_8-Ex_2",
                      quant_type="lucid", codebook_size=16, latent_dim=4, norm_codes=True),
}
WORKING_SIZE = {"semseg": 32, "features": 64, "pixels": 32}  # image size the tests encode at


def _get(cfg: dict, key: str, default):
    return cfg[key] if cfg.get(key) is not None else default


def backbone(name: str) -> dict:
    if name.startswith("vit_"):
        w, d, h = TINY_VIT
        return {"kind": "vit", "width": w, "depth": d, "heads": h}
    model, arch = name.split("/")
    parts = dict(p.split("_") for p in arch.split("-"))
    return {"kind": model, "width": int(parts["Wi"]), "depth": int(parts["B"]), "exp": int(parts.get("Ex", 4))}


def sincos_grid(width: int, side: int) -> Tensor:
    """(1, width, side, side): row positions in the first half of the channels, columns in the second."""
    q = width // 4
    omega = 1.0 / 10000.0 ** (torch.arange(q, dtype=torch.float32) / q)
    r = torch.arange(side, dtype=torch.float32)[:, None, None] * omega  # (side, 1, q)
    c = torch.arange(side, dtype=torch.float32)[None, :, None] * omega  # (1, side, q)
    r, c = r.expand(side, side, q), c.expand(side, side, q)
    table = torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=-1)  # (side, side, width)
    return table.permute(2, 0, 1)[None].contiguous()


def random_state(cfg: dict, seed: int = 0) -> dict[str, Tensor]:
    """A random state dict in ml-4m's layout (norm weights near 1, ConvNeXt gammas not tiny)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.3, offset=0.0):
        return torch.randn(*shape, generator=g) * scale + offset

    s: dict[str, Tensor] = {}
    ch, latent = cfg["n_channels"], cfg["latent_dim"]
    labels = cfg.get("n_labels")
    out_ch = labels or ch
    patch = _get(cfg, "patch_size", 16)
    pixel = _get(cfg, "patch_proj", True)

    def lin(prefix, n_out, n_in, conv=None):
        s[prefix + ".weight"] = rnd(n_out, n_in, *(conv or ()), scale=1 / math.sqrt(n_in * math.prod(conv or (1,))))
        s[prefix + ".bias"] = rnd(n_out, scale=0.1)

    def ln(prefix, dim):
        s[prefix + ".weight"] = rnd(dim, scale=0.1, offset=1.0)
        s[prefix + ".bias"] = rnd(dim, scale=0.1)

    def vit(prefix, b, side):
        d = b["width"]
        s[prefix + ".pos_emb"] = sincos_grid(d, side)
        for i in range(b["depth"]):
            p = f"{prefix}.blocks.{i}"
            ln(p + ".norm1", d)
            lin(p + ".attn.qkv", 3 * d, d)
            lin(p + ".attn.proj", d, d)
            ln(p + ".norm2", d)
            lin(p + ".mlp.fc1", 4 * d, d)
            lin(p + ".mlp.fc2", d, 4 * d)
        if cfg.get("post_mlp"):
            ln(prefix + ".norm_mlp", d)
            lin(prefix + ".post_mlp.fc1", 4 * d, d)
            lin(prefix + ".post_mlp.fc2", d, 4 * d)

    def mlp(prefix, b, dim_in, dim_out):
        w = b["width"]
        lin(prefix + ".linear_in", w, dim_in)
        if b["kind"] == "BottleneckMLP":
            for i in range(b["depth"]):
                ln(f"{prefix}.layernorms.{i}", w)
                lin(f"{prefix}.blocks.{i}.block.0", b["exp"] * w, w)
                lin(f"{prefix}.blocks.{i}.block.2", w, b["exp"] * w)
        else:
            for i in range(b["depth"] - 1):
                ln(f"{prefix}.layernorms.{i}", w)
                lin(f"{prefix}.layers.{i}", w, w)
        lin(prefix + ".linear_out", dim_out, w)

    enc = backbone(cfg["enc_type"])
    if labels:
        s["cls_emb.weight"] = rnd(labels, ch, scale=1.0)
    if enc["kind"] == "vit":
        lin("encoder.proj", enc["width"], ch, (patch, patch) if pixel else (1, 1))
        vit("encoder", enc, _get(cfg, "image_size_enc", _get(cfg, "image_size", 224)) // patch)
    else:
        mlp("encoder", enc, ch, enc["width"])
    lin("quant_proj", latent, enc["width"], (1, 1))
    size = cfg["codebook_size"]
    if cfg.get("quant_type") == "memcodes":
        h = cfg["num_codebooks"]
        s["quantize.codes"] = rnd(h, size, latent // h, scale=1.0)
        s["quantize.to_k.weight"] = rnd(h, latent // h, latent // h, scale=0.5)
        s["quantize.to_v.weight"] = rnd(h, latent // h, latent // h, scale=0.5)
    else:
        s["quantize._codebook.embed"] = rnd(size, latent, scale=1.0)
        s["quantize._codebook.initted"] = torch.ones(1)
        s["quantize._codebook.cluster_size"] = rnd(size).abs()
        if not cfg.get("norm_codes", True):
            s["quantize._codebook.embed_avg"] = rnd(size, latent)
    if "dec_type" in cfg:
        dec = backbone(cfg["dec_type"])
        lin("post_quant_proj", dec["width"], latent, (1, 1))
        if dec["kind"] == "vit":
            patch_dec = _get(cfg, "patch_size_dec", patch)
            vit("decoder", dec, _get(cfg, "image_size_dec", _get(cfg, "image_size", 224)) // patch_dec)
            lin("decoder.out_proj", out_ch * (patch_dec**2 if pixel else 1), dec["width"])
            if cfg.get("out_conv"):
                for k in range(2):
                    p = f"decoder.out_conv.{k}"
                    s[p + ".dwconv.weight"] = rnd(out_ch, 1, 7, 7, scale=0.2)
                    s[p + ".dwconv.bias"] = rnd(out_ch, scale=0.1)
                    ln(p + ".norm", out_ch)
                    lin(p + ".pwconv1", 4 * out_ch, out_ch)
                    lin(p + ".pwconv2", out_ch, 4 * out_ch)
                    s[p + ".gamma"] = rnd(out_ch, scale=0.5)
        else:
            mlp("decoder", dec, dec["width"], out_ch)
    return s


def write_checkpoint(path: Path, cfg: dict, state: dict[str, Tensor]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path / "model.safetensors"))
    return path


def random_input(name: str, batch: int = 3, seed: int = 1) -> Tensor:
    cfg, g = CASES[name], torch.Generator().manual_seed(seed)
    if name == "semseg":
        side = WORKING_SIZE[name]
        return torch.randint(0, cfg["n_labels"], (batch, side, side), generator=g)
    if name == "features":
        side = WORKING_SIZE[name] // cfg["patch_size"]
        return torch.randn(batch, cfg["n_channels"], side, side, generator=g)
    if name == "pixels":
        side = WORKING_SIZE[name]
        return torch.randn(batch, 3, side, side, generator=g)
    return torch.randn(batch, cfg["n_channels"], generator=g)


# ------------------------------------------------------------------------------------ reference
def _ln(x: Tensor, s: dict, p: str, eps: float) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], s[p + ".weight"], s[p + ".bias"], eps)


def _lin(x: Tensor, s: dict, p: str) -> Tensor:
    return x @ s[p + ".weight"].T + s[p + ".bias"]


def _vit(x: Tensor, s: dict, prefix: str, b: dict, grid: tuple[int, int], post_mlp: bool) -> Tensor:
    """x (B, N, D) tokens of a grid -> blocks with explicit softmax attention."""
    pos = F.interpolate(s[prefix + ".pos_emb"], size=grid, mode="bicubic", align_corners=False)
    x = x + pos.flatten(2).transpose(1, 2)
    batch, n, d = x.shape
    h = b["heads"]
    for i in range(b["depth"]):
        p = f"{prefix}.blocks.{i}"
        qkv = _lin(_ln(x, s, p + ".norm1", 1e-6), s, p + ".attn.qkv").reshape(batch, n, 3, h, d // h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-1, -2)) / math.sqrt(d // h)).softmax(-1)
        x = x + _lin((attn @ v).transpose(1, 2).reshape(batch, n, d), s, p + ".attn.proj")
        y = _ln(x, s, p + ".norm2", 1e-6)
        x = x + _lin(F.gelu(_lin(y, s, p + ".mlp.fc1")), s, p + ".mlp.fc2")
    if post_mlp:
        x = x + _lin(torch.tanh(_lin(_ln(x, s, prefix + ".norm_mlp", 1e-6), s, prefix + ".post_mlp.fc1")), s, prefix + ".post_mlp.fc2")
    return x


def _mlp(x: Tensor, s: dict, prefix: str, b: dict) -> Tensor:
    x = _lin(x, s, prefix + ".linear_in")
    if b["kind"] == "BottleneckMLP":
        for i in range(b["depth"]):
            y = _ln(x, s, f"{prefix}.layernorms.{i}", 1e-5)
            x = x + _lin(F.gelu(_lin(y, s, f"{prefix}.blocks.{i}.block.0")), s, f"{prefix}.blocks.{i}.block.2")
    else:
        for i in range(b["depth"] - 1):
            x = _lin(_ln(x, s, f"{prefix}.layernorms.{i}", 1e-5), s, f"{prefix}.layers.{i}")
    return _lin(x, s, prefix + ".linear_out")


def reference_encode(cfg: dict, s: dict[str, Tensor], x: Tensor) -> Tensor:
    """Token ids (B, N) of ml-4m's VQVAE.tokenize, flattened as ml-4m's token files store them."""
    enc = backbone(cfg["enc_type"])
    patch = _get(cfg, "patch_size", 16)
    if cfg.get("n_labels"):
        x = F.embedding(x, s["cls_emb.weight"]).permute(0, 3, 1, 2)
    if cfg.get("undo_std"):
        x = 2 * (x * IMAGENET_STD[None, :, None, None] + IMAGENET_MEAN[None, :, None, None]) - 1
    if x.dim() == 2:
        x = x[:, :, None, None]
    if enc["kind"] == "vit":
        stride = patch if _get(cfg, "patch_proj", True) else 1
        t = F.conv2d(x, s["encoder.proj.weight"], s["encoder.proj.bias"], stride=stride)  # (B, D, h, w)
        grid = tuple(t.shape[2:])
        t = _vit(t.flatten(2).transpose(1, 2), s, "encoder", enc, grid, bool(cfg.get("post_mlp")))
        t = t.transpose(1, 2).reshape(t.shape[0], -1, *grid)
    else:
        t = _mlp(x.permute(0, 2, 3, 1), s, "encoder", enc).permute(0, 3, 1, 2)
    z = F.conv2d(t, s["quant_proj.weight"], s["quant_proj.bias"])  # (B, L, h, w)
    b, latent, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, latent)
    if cfg.get("quant_type") == "memcodes":
        heads = cfg["num_codebooks"]
        hd = latent // heads
        q = flat.reshape(-1, heads, hd) * hd**-0.5
        keys = torch.einsum("hkd,hde->hke", s["quantize.codes"], s["quantize.to_k.weight"])
        ids = torch.einsum("mhd,hkd->mhk", q, keys).argmax(-1)  # (B*h*w, heads)
        return ids.reshape(b, h * w, heads).permute(0, 2, 1).reshape(b, -1)
    codes = s["quantize._codebook.embed"]
    if cfg.get("norm_codes", True):
        ids = (F.normalize(flat, dim=-1) @ F.normalize(codes, dim=-1).T).argmax(-1)
    else:
        if cfg.get("norm_latents"):
            flat = F.normalize(flat, dim=-1)
        ids = torch.cdist(flat, codes).argmin(-1)
    return ids.reshape(b, h * w)


def reference_decode(cfg: dict, s: dict[str, Tensor], ids: Tensor) -> Tensor:
    """ml-4m's VQVAE.decode_tokens output (B, C, H, W) for ids (B, N) on a square grid (or vectors)."""
    b = ids.shape[0]
    if cfg.get("quant_type") == "memcodes":
        heads = cfg["num_codebooks"]
        values = torch.einsum("hkd,hde->hke", s["quantize.codes"], s["quantize.to_v.weight"])
        per = ids.reshape(b, heads)  # vectors: one position
        q = torch.cat([values[h][per[:, h]] for h in range(heads)], dim=-1)[:, :, None, None]
    else:
        side = math.isqrt(ids.shape[1])
        q = F.embedding(ids.reshape(b, side, side), s["quantize._codebook.embed"]).permute(0, 3, 1, 2)
    q = F.conv2d(q, s["post_quant_proj.weight"], s["post_quant_proj.bias"])
    dec = backbone(cfg["dec_type"])
    labels = cfg.get("n_labels")
    out_ch = labels or cfg["n_channels"]
    if dec["kind"] != "vit":
        return _mlp(q.permute(0, 2, 3, 1), s, "decoder", dec).permute(0, 3, 1, 2)
    grid = tuple(q.shape[2:])
    x = _vit(q.flatten(2).transpose(1, 2), s, "decoder", dec, grid, bool(cfg.get("post_mlp")))
    x = _lin(x, s, "decoder.out_proj")
    pixel = _get(cfg, "patch_proj", True)
    p = _get(cfg, "patch_size_dec", _get(cfg, "patch_size", 16)) if pixel else 1
    x = x.reshape(b, grid[0], grid[1], out_ch, p, p)
    x = torch.einsum("bhwcpq->bchpwq", x).reshape(b, out_ch, grid[0] * p, grid[1] * p)
    if cfg.get("out_conv"):
        for k in range(2):
            pre = f"decoder.out_conv.{k}"
            y = F.conv2d(x, s[pre + ".dwconv.weight"], s[pre + ".dwconv.bias"], padding=3, groups=out_ch)
            y = _ln(y.permute(0, 2, 3, 1), s, pre + ".norm", 1e-6)
            y = _lin(F.gelu(_lin(y, s, pre + ".pwconv1")), s, pre + ".pwconv2") * s[pre + ".gamma"]
            x = x + y.permute(0, 3, 1, 2)
    return x
