"""Write the ml-4m parity fixtures of tests/fixtures/ml4m/ from the UNMODIFIED apple/ml-4m sources.

Run it outside the test suite, in a side environment where ml-4m's modules import (its package is
also called ``fourm``: this script puts the ml-4m checkout first on ``sys.path`` and never imports
this project's ``fourm``; it refuses to run if the wrong one is picked up)::

    python -m venv /tmp/ml4m_venv   # + a .pth line pointing at this project's site-packages (torch)
    /tmp/ml4m_venv/bin/pip install einops timm huggingface_hub==0.24.0 diffusers==0.20.0 tokenizers \\
        torchvision webdataset boto3 albumentations opencv-python-headless matplotlib ftfy
    /tmp/ml4m_venv/bin/python bench/ml4m_parity/make_fixtures.py --ml4m /tmp/ml4m_src --out tests/fixtures/ml4m

What it writes (all small; the large files xz-compressed, which the tests unpack into a temp dir):

* ``fm_4m7/``, ``fm_4m21/``: FM models built by ml-4m's own ``FM(config)`` (fm_*_swiglu_nobias family:
  SwiGLU, no biases, bias-free LayerNorm) with the released 4M-7 / 4M-21 modality names and
  vocabulary sizes, width 64, 4 heads, 2 + 2 blocks, saved by ml-4m's ``save_pretrained`` (hub
  layout: ``config.json`` + ``model.safetensors``, here ``model.safetensors.xz``), and ``io.safetensors.xz``:
  ml-4m-style masked inputs (per modality ``tensor`` / ``input_mask`` / ``target_mask`` /
  ``decoder_attention_mask``, image and sequence targets) and ml-4m's outputs for them (encoder
  output, decoder output after the final norm, logits of every target modality), each token keyed
  by (sample, modality, index in the modality's tensor).
* ``vqvae_semseg/``, ``vqvae_global/``: ml-4m ``VQVAE`` tokenizers (random init) and ``io.safetensors``:
  inputs, ml-4m's token ids, and ml-4m's decoder output for those ids.
* ``text/``: a WordPiece tokenizer built with ml-4m's own helpers (the released 30k json is not in
  the ml-4m repository) and ``cases.json``: captions, boxes, metadata and palettes with ml-4m's text
  and ids (through its transforms and ``UnifiedMasking.sequence_mask``), and span-masking cases.
* ``manifest.json``: the ml-4m commit, package versions, and what was changed after ml-4m's init.

Weights: ml-4m's random init, then (so that mix-ups of norms show and the files stay small) LayerNorm
weights set to 1 + N(0, 0.1^2) and the context projection bias to N(0, 0.02^2); every vocabulary
table (``token_emb``, ``to_logits``; V x D) keeps ml-4m's values on a random subset of
``--keep-rows`` ids per modality and is zero elsewhere (the inputs use ids of both kinds); all
parameters are rounded to fp16 *before* ml-4m runs, and stored in fp16 (lossless: the outputs were
computed from exactly these values); buffers (fixed sin-cos tables, zero norm biases) stay fp32.
"""

from __future__ import annotations

import argparse
import collections.abc
import importlib
import json
import lzma
import os
import random
import subprocess
import sys
import tempfile
import types
from pathlib import Path

SEED = 2024
MAX_KEY = 100_000  # key = sample * MAX_KEY**2 + modality index * MAX_KEY + index in the modality's tensor
VIT_SMALL = {"dim_tokens": 128, "depth": 2, "num_heads": 2}  # the vit_b preset, shrunk for the fixture

FM_COMMON = {
    "act_layer": "SiLU", "decoder_causal_mask": False, "decoder_depth": 2, "decoder_sep_mask": True, "dim": 64,
    "encoder_depth": 2, "gated_mlp": True, "image_size": 224, "mlp_bias": False, "mlp_ratio": 4, "norm_bias": False,
    "num_heads": 4, "num_register_tokens": 0, "patch_size": 16, "proj_bias": False, "qk_norm": False,
    "qkv_bias": False,
}
MOD7_IN = ["rgb@224", "tok_rgb@224", "tok_depth@224", "tok_semseg@224", "tok_normal@224", "tok_clip@224", "caption", "det"]
MOD7_OUT = ["tok_rgb@224", "tok_depth@224", "tok_semseg@224", "tok_normal@224", "tok_clip@224", "caption", "det"]
MOD21_IN = ("caption-t5_caption-det-metadata-rgb@224-tok_rgb@224-tok_normal@224-tok_depth@224-tok_semseg@224-"
            "tok_clip@224-human_poses-tok_dinov2@224-tok_dinov2_global-tok_imagebind@224-tok_imagebind_global-"
            "tok_sam_edge@224-tok_canny_edge@224-color_palette-sam_instance").split("-")
MOD21_OUT = [m for m in MOD21_IN if m not in ("t5_caption", "rgb@224")]
ALL = ("fm_4m7", "fm_4m21", "vqvae_semseg", "vqvae_global", "text")


# ------------------------------------------------------------------------------ environment
def import_ml4m(path: Path):
    """Import ml-4m's ``fourm`` from ``path`` (first on sys.path). Two import-time shims, neither
    touching ml-4m's computation: torchvision's C ops may not load next to a CPU-only torch (its
    meta registrations are skipped: ml-4m's models use no torchvision op), and ``transformers`` is
    hidden so that diffusers 0.20 does not import an incompatible newer one (ml-4m's VQ-VAE / FM
    code does not use it)."""
    root = str(path.resolve())
    if any(name == "fourm" or name.startswith("fourm.") for name in sys.modules):
        raise SystemExit("a 'fourm' package is already imported; run this script in its own process")
    sys.path.insert(0, root)
    try:
        import torchvision  # noqa: F401
    except (RuntimeError, OSError):
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision  # noqa: F401
    sys.modules.setdefault("transformers", None)  # type: ignore[arg-type]
    import fourm.models

    where = Path(fourm.models.__file__).resolve()  # ml-4m's fourm is a namespace package
    if not str(where).startswith(root):
        raise SystemExit(f"imported fourm from {where}, not from the ml-4m checkout {root}")
    _python310_sample(importlib.import_module("fourm.models.fm"))
    return fourm


def _python310_sample(module) -> None:
    """ml-4m's FM.cat_decoder_tensors calls ``random.sample(dict.items(), n)``, which Python >= 3.11
    refuses (ml-4m targets 3.9 / 3.10). Give that module a ``random`` whose ``sample`` does what
    3.10's did (a set-like population taken as a tuple, same draws from the global generator)."""
    shim = types.ModuleType("random")
    shim.__dict__.update({k: v for k, v in vars(random).items() if not k.startswith("__")})

    def sample(population, k, **kw):
        if isinstance(population, collections.abc.Set):
            population = tuple(population)
        return random.sample(population, k, **kw)

    shim.sample = sample
    module.random = shim


def ml4m_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("ML4M_COMMIT", "unknown")


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "huggingface_hub", "safetensors", "tokenizers", "einops", "diffusers", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def write_xz(path: Path, data: bytes) -> None:
    path.write_bytes(lzma.compress(data, preset=6))


def safetensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


# ------------------------------------------------------------------------------ weights
def _norm_weights(model) -> set[str]:
    """Names of the LayerNorm weights of ``model`` (torch's or ml-4m's own bias-free LayerNorm)."""
    return {f"{name}.weight" if name else "weight" for name, mod in model.named_modules()
            if type(mod).__name__ == "LayerNorm" and getattr(mod, "weight", None) is not None}


def prepare_weights(model, gen, vocab_keep: dict[str, set[int]] | None = None) -> None:
    """In place: perturbed norm weights / context bias, thinned vocabulary tables, fp16 rounding."""
    import torch

    norms = _norm_weights(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in norms:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name == "decoder_proj_context.bias":
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            elif vocab_keep is not None and name.endswith(("token_emb.weight", "to_logits.weight")):
                keep = torch.zeros(p.shape[0], dtype=torch.bool)
                keep[sorted(vocab_keep[name.split(".")[1]])] = True
                p.masked_fill_(~keep[:, None], 0.0)
            p.copy_(p.half().float())


def vocab_keep_sets(domains: list[str], vocab: dict[str, int], keep_rows: int, gen) -> dict[str, set[int]]:
    import torch

    out = {}
    for m in domains:
        if m in vocab:
            v = vocab[m]
            rows = torch.randperm(v, generator=gen)[:keep_rows].tolist()
            out[m] = set(rows) | {0, 3, 4, 5, 6}  # [PAD], [EOS] and the first sentinels of sequences
    return out


def save_hub_fp16(model, out_dir: Path) -> dict[str, int]:
    """ml-4m's ``save_pretrained`` (hub layout), then parameters stored as fp16 (already fp16 values);
    config.json copied as written; model.safetensors xz-compressed. Returns byte sizes."""
    import torch
    from safetensors.torch import load_file

    params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        state = load_file(str(Path(tmp) / "model.safetensors"))
        for k, v in state.items():
            if k in params and v.is_floating_point():
                assert torch.equal(v.half().float(), v), k
                state[k] = v.half()
        raw = safetensors_bytes(state, {"format": "pt"})
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text((Path(tmp) / "config.json").read_text())
    write_xz(out_dir / "model.safetensors.xz", raw)
    return {"model.safetensors": len(raw)}


# ------------------------------------------------------------------------------ FM inputs
def _ids(gen, n: int, vocab: int, keep: set[int]) -> list[int]:
    """Random ids, about 3 in 4 from the rows the tables keep."""
    import torch

    kept = sorted(keep)
    out = []
    for _ in range(n):
        if torch.rand((), generator=gen) < 0.75:
            out.append(kept[int(torch.randint(len(kept), (), generator=gen))])
        else:
            out.append(int(torch.randint(vocab, (), generator=gen)))
    return out


def build_fm_inputs(ml4m, config: dict, gen, keep: dict[str, set[int]], batch: int, scenario: list[dict]):
    """ml-4m mod_dict for ``batch`` samples. ``scenario[b][modality]``: role of the modality in sample
    b: ``in`` / ``out`` / ``both`` / ``seq_in`` (whole sequence given) / ``seq_out`` (generate whole) /
    ``seq_mix`` (span-masked); absent modalities are fully masked. Returns (mod_dict, raw) where raw
    holds what is saved (rgb as uint8 pixels)."""
    import torch
    from fourm.data.modality_info import MODALITY_INFO

    from fourm.data.masking import simple_span_masking

    sentinel_to_id = {i: 4 + i for i in range(200)}  # [S_i] is id 4 + i in 4M's WordPiece vocabulary
    eos = 3
    mods = sorted((set(config["domains_in"]) | set(config["domains_out"])) - {"t5_caption"})
    mod_dict, raw = {}, {}
    for m in mods:
        info = MODALITY_INFO[m]
        if m.startswith("rgb@"):
            side = info["input_size"]
            n = (side // info["patch_size"]) ** 2
            yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
            base = torch.stack([yy, xx, (yy + xx) / 2], dim=-1)[None].repeat(batch, 1, 1, 1)
            noise = torch.rand(batch, side, side, 3, generator=gen) * 0.3
            pixels = ((base * 0.7 + noise) * 255).round().clamp(0, 255).to(torch.uint8)  # (B, H, W, 3)
            mean = torch.tensor([0.485, 0.456, 0.406])
            std = torch.tensor([0.229, 0.224, 0.225])
            normed = ((pixels.float() / 255.0 - mean) / std).permute(0, 3, 1, 2).contiguous()
            input_mask = torch.ones(batch, n, dtype=torch.bool)
            for b in range(batch):
                if scenario[b].get(m) == "in":
                    k = int(torch.randint(6, 16, (), generator=gen))
                    input_mask[b, torch.randperm(n, generator=gen)[:k]] = False
            mod_dict[m] = {"tensor": normed, "input_mask": input_mask, "target_mask": torch.ones(batch, n, dtype=torch.bool),
                           "decoder_attention_mask": torch.zeros(batch, n, dtype=torch.int)}
            raw[m] = {"tensor": pixels}
            continue
        if info["type"] == "img":
            if "input_size" in info:
                n = (info["input_size"] // info["patch_size"]) ** 2
            else:
                n = (config["image_size"] // info["patch_size"]) ** 2
            vocab = info["vocab_size"]
            tensor = torch.tensor([_ids(gen, n, vocab, keep[m]) for _ in range(batch)], dtype=torch.long)
            input_mask = torch.ones(batch, n, dtype=torch.bool)
            target_mask = torch.ones(batch, n, dtype=torch.bool)
            dam = torch.zeros(batch, n, dtype=torch.int)
            for b in range(batch):
                role = scenario[b].get(m)
                if role is None:
                    continue
                perm = torch.randperm(n, generator=gen)
                k_in = int(torch.randint(3, 9, (), generator=gen)) if role in ("in", "both") else 0
                k_out = int(torch.randint(2, 7, (), generator=gen)) if role in ("out", "both") else 0
                input_mask[b, perm[:k_in]] = False
                target_mask[b, perm[k_in : k_in + k_out]] = False
                if k_out:
                    first = int((~target_mask[b]).nonzero()[0])
                    dam[b, first] = k_out  # as ml-4m's UnifiedMasking.image_mask
            mod_dict[m] = {"tensor": tensor, "input_mask": input_mask, "target_mask": target_mask,
                           "decoder_attention_mask": dam}
        else:  # sequence, laid out as ml-4m's UnifiedMasking.sequence_mask lays it out
            vocab = info["vocab_size"]
            max_seq = 10
            budget = max_seq + 2  # input region [0, budget), target region [budget, ...)
            length = 2 * (max_seq + 2) + 2
            tensor = torch.zeros(batch, length, dtype=torch.long)
            input_mask = torch.ones(batch, length, dtype=torch.bool)
            target_mask = torch.ones(batch, length, dtype=torch.bool)
            dam = torch.zeros(batch, length, dtype=torch.int)
            for b in range(batch):
                role = scenario[b].get(m)
                if role is None:
                    continue
                n = int(torch.randint(3, max_seq, (), generator=gen))
                seq = _ids(gen, n, vocab, keep[m] - {0, 3, *sentinel_to_id.values()}) + [eos]
                keep_prob = {"seq_in": 1.0, "seq_out": 0.0, "seq_mix": 0.5}[role]
                torch.manual_seed(int(torch.randint(1 << 30, (), generator=gen)))
                inp, tgt = simple_span_masking(seq, sentinel_to_id, keep_prob)
                if role == "seq_out":
                    inp = []  # ml-4m: an input budget of 0 gives no input tokens
                tensor[b, : len(inp)] = torch.tensor(inp, dtype=torch.long)
                input_mask[b, : len(inp)] = False
                tensor[b, budget : budget + len(tgt)] = torch.tensor(tgt, dtype=torch.long)
                target_mask[b, budget : budget + len(tgt)] = False
                dam[b, budget : budget + len(tgt)] = 1
            mod_dict[m] = {"tensor": tensor, "input_mask": input_mask, "target_mask": target_mask,
                           "decoder_attention_mask": dam}
        raw[m] = {"tensor": mod_dict[m]["tensor"]}
    for m, d in mod_dict.items():
        raw[m].update({k: d[k] for k in ("input_mask", "target_mask", "decoder_attention_mask")})
    return mod_dict, raw


def run_fm(model, mod_dict: dict, names: list[str], seed: int):
    """ml-4m's forward, step by step (its own methods), with a key for every token of the
    concatenated and masked encoder / decoder sequences; checked against ``model(...)``'s loss."""
    import torch

    B = next(iter(mod_dict.values()))["input_mask"].shape[0]
    clone = {m: {k: v.clone() for k, v in d.items()} for m, d in mod_dict.items()}
    enc_dict = {m: model.encoder_embeddings[m](clone[m]) for m in clone if m in model.encoder_embeddings}
    dec_clone = {m: {k: v.clone() for k, v in d.items()} for m, d in mod_dict.items()}
    dec_dict = {m: model.decoder_embeddings[m].forward_embed(dec_clone[m]) for m in dec_clone if m in model.decoder_embeddings}
    n_enc = int(max((~torch.cat([d["input_mask"] for d in enc_dict.values()], 1)).sum(1))) + 3

    def dec_valid(d, m):
        tm = d["target_mask"]
        if model.modality_info[m]["type"] in ("seq", "seq_emb", "seq_token"):
            return ~(tm[:, 1:] | tm[:, :-1])
        return ~tm

    n_dec = int(max(torch.cat([dec_valid(d, m) for m, d in dec_dict.items()], 1).sum(1))) + 3

    # keys of the concatenated sequences, gathered as ml-4m gathers its tokens
    def keyed(d_items, masks):
        keys, mask = [], []
        for (m, _), msk in zip(d_items, masks):
            n = msk.shape[1]
            keys.append(names.index(m) * MAX_KEY + torch.arange(n)[None].expand(B, -1))
            mask.append(msk)
        keys, mask = torch.cat(keys, 1), torch.cat(mask, 1)
        return keys, mask

    enc_keys_all, enc_mask_all = keyed(list(enc_dict.items()), [d["input_mask"] for d in enc_dict.values()])
    order = torch.argsort(enc_mask_all + torch.arange(enc_mask_all.shape[1])[None] * 1e-6, dim=1)[:, :n_enc]
    enc_keys = torch.gather(enc_keys_all, 1, order)

    random.seed(seed)
    state = random.getstate()
    shuffled = random.sample(tuple(dec_dict.items()), len(dec_dict))  # what cat_decoder_tensors draws
    random.setstate(state)
    dmasks = []
    for m, d in shuffled:
        is_seq = model.modality_info[m]["type"] in ("seq", "seq_emb", "seq_token")
        dmasks.append(d["target_mask"][:, 1:] | d["target_mask"][:, :-1] if is_seq else d["target_mask"])
    dec_keys_all, dec_mask_all = keyed(shuffled, dmasks)
    order = torch.argsort(dec_mask_all + torch.arange(dec_mask_all.shape[1])[None] * 1e-6, dim=1)[:, :n_dec]
    dec_keys = torch.gather(dec_keys_all, 1, order)

    with torch.no_grad():
        encoder_tokens, encoder_emb, encoder_mask, _ = model.forward_mask_encoder(enc_dict, n_enc)
        random.setstate(state)
        (decoder_tokens, decoder_emb, decoder_mask, target_ids, decoder_attention_mask,
         decoder_mod_mask) = model.forward_mask_decoder(dec_dict, n_dec)
        assert torch.equal(encoder_mask[:, 0], torch.gather(enc_mask_all, 1, torch.argsort(
            enc_mask_all + torch.arange(enc_mask_all.shape[1])[None] * 1e-6, dim=1)[:, :n_enc]))
        x = model.forward_encoder(encoder_tokens + encoder_emb, encoder_mask=encoder_mask)
        context = model.decoder_proj_context(x) + encoder_emb
        y = model.forward_decoder(decoder_tokens + decoder_emb, context, encoder_mask=encoder_mask,
                                  decoder_attention_mask=decoder_attention_mask)
        logits = model.forward_logits(y, dec_dict, decoder_mod_mask)
        # the same numbers through ml-4m's own forward (its loss), as a check of the steps above
        random.seed(seed)
        again = {m: {k: v.clone() for k, v in d.items()} for m, d in mod_dict.items()}
        loss, mod_loss = model(again, num_encoder_tokens=n_enc, num_decoder_tokens=n_dec, loss_type="mod")
    valid_dec = ~decoder_mask[:, 0]
    for m, lg in logits.items():
        idx = model.modality_info[m]["id"]
        tgt = target_ids[decoder_mod_mask == idx].long()
        if lg.numel():
            want = torch.nn.functional.cross_entropy(lg, tgt)
            assert torch.allclose(want, mod_loss[m], atol=1e-5), (m, float(want), float(mod_loss[m]))
    out = {
        "num_encoder_tokens": torch.tensor(n_enc),
        "num_decoder_tokens": torch.tensor(n_dec),
        "enc_out": x, "enc_key": enc_keys, "enc_valid": ~encoder_mask[:, 0],
        "dec_out": y, "dec_key": dec_keys, "dec_valid": valid_dec,
        "dec_target": target_ids.long(),
    }
    bkey = torch.arange(B)[:, None] * MAX_KEY * MAX_KEY
    for m, lg in logits.items():
        idx = model.modality_info[m]["id"]
        sel = decoder_mod_mask == idx
        out[f"logits.{m}"] = lg
        out[f"logits_key.{m}"] = (dec_keys + bkey)[sel]
    return out


def make_fm(ml4m, name: str, domains_in, domains_out, extra: dict, out: Path, keep_rows: int, scenario_fn) -> dict:
    import torch
    from fourm.data.modality_info import MODALITY_INFO
    from fourm.models.fm import FM

    gen = torch.Generator().manual_seed(SEED + len(name))
    torch.manual_seed(SEED)
    config = {**FM_COMMON, "domains_in": list(domains_in), "domains_out": list(domains_out), **extra}
    model = FM(config=config).eval()
    names = sorted(set(domains_in) | set(domains_out))
    vocab = {m: MODALITY_INFO[m]["vocab_size"] for m in names if MODALITY_INFO[m].get("vocab_size")}
    keep = vocab_keep_sets(names, vocab, keep_rows, gen)
    prepare_weights(model, gen, keep)
    sizes = save_hub_fp16(model, out / name)
    scenario = scenario_fn(names, gen)
    mod_dict, raw = build_fm_inputs(ml4m, config, gen, keep, len(scenario), scenario)
    outputs = run_fm(model, mod_dict, names, seed=SEED)
    tensors = {f"in.{m}.{k}": v for m, d in raw.items() for k, v in d.items()}
    tensors.update({f"out.{k}": v for k, v in outputs.items()})
    meta = {"modalities": json.dumps(names), "max_key": str(MAX_KEY),
            "roles": json.dumps(scenario)}
    data = safetensors_bytes({k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}, meta)
    write_xz(out / name / "io.safetensors.xz", data)
    sizes["io.safetensors"] = len(data)
    targets = {m for s in scenario for m, r in s.items() if r in ("out", "both", "seq_out", "seq_mix")}
    return {"config": config, "roles": scenario, "targets": sorted(targets), "raw_sizes": sizes}


def scenario_4m7(names, gen):
    """Hand-written: every kind of input and target (pixels, image tokens, whole / span-masked /
    generated sequences) in one of the two samples."""
    return [
        {"rgb@224": "in", "caption": "seq_in", "tok_depth@224": "in", "tok_rgb@224": "out",
         "tok_semseg@224": "out", "det": "seq_out"},
        {"tok_clip@224": "both", "det": "seq_mix", "caption": "seq_mix", "tok_normal@224": "out",
         "tok_rgb@224": "out", "rgb@224": "in"},
    ]


def scenario_random(ins, outs):
    def make(names, gen):
        import torch

        rows = []
        for _ in range(2):
            row = {}
            for m in names:
                if m == "t5_caption":
                    continue
                is_in, is_out = m in ins, m in outs
                u = float(torch.rand((), generator=gen))
                seq = not (m.startswith("tok_") or m.startswith("rgb"))
                if u < 0.2:
                    continue
                if seq:
                    opts = [r for r, ok in (("seq_in", is_in), ("seq_out", is_out), ("seq_mix", is_in and is_out)) if ok]
                else:
                    opts = [r for r, ok in (("in", is_in), ("out", is_out), ("both", is_in and is_out)) if ok]
                row[m] = opts[int(torch.randint(len(opts), (), generator=gen))]
            rows.append(row)
        return rows

    return make


# ------------------------------------------------------------------------------ VQ-VAE
def shrink_vit_b(ml4m_vit_models) -> None:
    """ml-4m's vit_b_enc / vit_b_dec presets (768 wide, 12 blocks) replaced, in this process only,
    by the same classes with VIT_SMALL sizes (the tests shrink fourm's preset table the same way)."""
    vm = ml4m_vit_models

    def small_enc(in_channels, patch_size, resolution, **kw):
        return vm.ViTEncoder(in_channels=in_channels, patch_size=patch_size, resolution=resolution,
                             mlp_ratio=4, qkv_bias=True, **VIT_SMALL, **kw)

    def small_dec(out_channels, patch_size, resolution, **kw):
        return vm.ViTDecoder(out_channels=out_channels, patch_size=patch_size, resolution=resolution,
                             mlp_ratio=4, qkv_bias=True, **VIT_SMALL, **kw)

    vm.vit_b_enc, vm.vit_b_dec = small_enc, small_dec


def make_vqvae(name: str, config: dict, inputs, out: Path) -> dict:
    import torch
    from fourm.vq.vqvae import VQVAE

    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED + 7)
    model = VQVAE(config=config).eval()
    norms = _norm_weights(model)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname in norms:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif pname.endswith("bias") and p.dim() == 1 and not pname.startswith("quantize"):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            p.copy_(p.half().float())
        for bname, buf in model.named_buffers():  # the lucid codebook is a buffer (EMA-trained)
            if buf.is_floating_point() and bname.startswith("quantize") and bname.endswith("embed"):
                buf.copy_(buf.half().float())
        quant, _, tokens = model.encode(inputs)
        decoded = model.decode_tokens(tokens)
        again = model.decode_quant(quant)
    assert torch.allclose(decoded, again, atol=1e-5)
    sizes = save_hub_fp16(model, out / name)
    io = {"input": inputs, "tokens": tokens.long(), "decoded": decoded}
    data = safetensors_bytes(io, {"config": json.dumps(config)})
    write_xz(out / name / "io.safetensors.xz", data)
    sizes["io.safetensors"] = len(data)
    return {"config": config, "raw_sizes": sizes, "tokens_shape": list(tokens.shape), "decoded_shape": list(decoded.shape)}


# ------------------------------------------------------------------------------ text
CORPUS = [
    "A photo of a dog on the sofa.",
    "Two cats sleeping on a bed next to a TV.",
    "a red car parked near the house, with a man holding a baseball bat",
    "people walking in the park on a sunny day",
    "A bowl of fruit: apples, bananas and oranges on a wooden table!",
    "The skier jumps over the snowy hill while a crowd watches.",
    "an old train crossing a bridge over the river at sunset",
]


def make_text(out: Path) -> dict:
    import torch
    from fourm.data.modality_info import MODALITY_INFO
    from fourm.data.modality_transforms import ColorPaletteTransform, DetectionTransform, MetadataTransform
    from fourm.utils.tokenizer.text_tokenizer import (
        generate_coord_tokens,
        generate_object_class_tokens,
        generate_sentinel_tokens,
        get_sentinel_to_id_mapping,
        train_unified_wordpiece_tokenizer,
    )

    from fourm.data.masking import UnifiedMasking, chunk_span_masking, simple_span_masking

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(CORPUS * 3) + "\n")
        specials = 4 + 200 + 4 * 1000 + 80
        tok = train_unified_wordpiece_tokenizer(
            files=[str(corpus)], vocab_size=specials + 160,
            sentinel_tokens=generate_sentinel_tokens(num=200), coord_tokens=generate_coord_tokens(bins=1000),
            object_class_tokens=generate_object_class_tokens("coco"), lowercase=True, show_progress=False)
        path = Path(tmp) / "tokenizer.json"
        tok.save(str(path))
        raw = path.read_bytes()
    (out / "text").mkdir(parents=True, exist_ok=True)
    write_xz(out / "text" / "tokenizer.json.xz", raw)

    def info(m):
        return {**MODALITY_INFO[m], "input_alphas": [1.0], "target_alphas": [1.0]}

    mods = ("caption", "det", "metadata", "color_palette")
    masking = UnifiedMasking({m: info(m) for m in mods}, tok, input_tokens_range=64, target_tokens_range=64)

    def whole(m, seq):
        """ml-4m's ids for a whole value given as input: sequence_mask with keep_scheme 'all'."""
        d = masking.sequence_mask(seq, MODALITY_INFO[m]["max_tokens"], input_budget=1000, target_budget=1000,
                                  keep_scheme="all")
        return d["tensor"][~d["input_mask"]].tolist()

    cases = []
    captions = CORPUS[:3] + ["Zebra & giraffe?! Unseen-word xylophone 42", "  multiple   spaces\tand TABS  ",
                              "a " * 300]
    for c in captions:
        cases.append({"modality": "caption", "value": c, "text": c, "ids": whole("caption", c)})

    det = DetectionTransform(det_threshold=0.6, bbox_order="dist_to_orig", coord_bins=1000)
    boxes_sets = [
        [{"boxes": [0.1, 0.2, 0.5, 0.8], "class_name": "dog", "score": 0.9},
         {"boxes": [0.0, 0.0, 0.3, 0.25], "class_name": "baseball bat", "score": 0.7},
         {"boxes": [0.6, 0.1, 0.9, 0.5], "class_name": "tv", "score": 0.3}],
        [{"boxes": [0.5005, 0.25, 0.7495, 1.0], "class_name": "person", "score": 0.61},
         {"boxes": [0.2, 0.2, 0.4, 0.4], "class_name": "cell phone", "score": 0.99},
         {"boxes": [0.2, 0.2, 0.3, 0.3], "class_name": "hair drier", "score": 0.6}],
        [],
    ]
    for boxes in boxes_sets:
        kept = det.order_and_filter_bboxes(det.convert_detection_instance(boxes))
        text = det.convert_bboxes_to_string(kept)
        cases.append({"modality": "det", "value": boxes, "text": text, "ids": whole("det", text)})

    meta = MetadataTransform(shuffle=False, random_trunc=False, return_chunks=True)
    metadata_sets = [
        {"original_width": 640, "original_height": 480, "caption_n_words": 12, "brightness": 131.7,
         "watermark_score": 0.2, "aesthetic_score": 5.0, "walkability": 1.3, "n_humans": 2000},
        {"entropy": 7.25, "contrast": 0.0, "colorfulness": 150.0, "objectness": 0.5, "occlusion_score": 0.1,
         "semantic_diversity": 3, "geometric_complexity": 0.74, "saturation": -4.0, "aesthetic_score": 5.5,
         "n_sam_instances": 57, "caption_n_chars": 80, "caption_n_sentences": 1, "n_coco_instances": 4,
         "coco_instance_diversity": 2, "original_width": 33000},
    ]
    for md in metadata_sets:
        chunks = meta.metadata_to_string(dict(md))
        cases.append({"modality": "metadata", "value": md, "text": chunks, "ids": whole("metadata", chunks)})

    palette = ColorPaletteTransform(coord_bins=1000)
    palettes = [[[255, 0, 0], [12.4, 200.6, 33]], [[0, 0, 0]], [[1, 2, 3], [4, 5, 6], [7, 8, 9], [250, 251, 252.5]]]
    for colors in palettes:
        flat = [v for c in colors for v in c]
        text = palette.convert_palettes_to_string(flat)
        cases.append({"modality": "color_palette", "value": colors, "text": text, "ids": whole("color_palette", text)})

    # span masking (ml-4m's functions, with the masks they drew recorded)
    s2i = get_sentinel_to_id_mapping(tok)
    spans = []
    for i, c in enumerate(cases[:4] + cases[6:7]):
        ids = c["ids"]
        seed = 100 + i
        torch.manual_seed(seed)
        masks = (torch.rand(len(ids)) > 0.5).tolist()
        torch.manual_seed(seed)
        inp, tgt = simple_span_masking(ids, s2i, 0.5)
        spans.append({"ids": ids, "masked": masks, "input": inp, "target": tgt})
    chunk_cases = []
    for i, md in enumerate(metadata_sets):
        chunks = [e.ids for e in tok.encode_batch(meta.metadata_to_string(dict(md)))] + [[masking.eos_id]]
        torch.manual_seed(200 + i)
        masks = (torch.rand(len(chunks)) > 0.5).tolist()
        torch.manual_seed(200 + i)
        inp, tgt = chunk_span_masking(chunks, s2i, 0.5)
        chunk_cases.append({"chunks": chunks, "masked": masks, "input": inp, "target": tgt})
    data = {"tokenizer": {"vocab_size": tok.get_vocab_size(), "built_with": "train_unified_wordpiece_tokenizer",
                          "corpus": CORPUS, "num_sentinels": 200, "coord_bins": 1000, "object_classes": "coco"},
            "max_tokens": {m: MODALITY_INFO[m]["max_tokens"] for m in mods},
            "cases": cases, "span_masking": spans, "chunk_span_masking": chunk_cases}
    (out / "text" / "cases.json").write_text(json.dumps(data, indent=1) + "\n")
    return {"vocab_size": tok.get_vocab_size(), "cases": len(cases), "raw_sizes": {"tokenizer.json": len(raw)}}


# ------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ml4m", required=True, type=Path, help="an apple/ml-4m checkout (its sources, unmodified)")
    p.add_argument("--out", required=True, type=Path, help="fixture directory (tests/fixtures/ml4m)")
    p.add_argument("--commit", default=None, help="ml-4m commit to record (default: git rev-parse in --ml4m)")
    p.add_argument("--keep-rows", type=int, default=96, help="rows kept per vocabulary table")
    p.add_argument("--only", nargs="+", default=None, choices=ALL,
                   help="regenerate these fixtures only (the others and their manifest entries are kept)")
    args = p.parse_args(argv)
    todo = set(args.only or ALL)
    import torch

    torch.set_num_threads(1)
    ml4m = import_ml4m(args.ml4m)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "ml4m": {"repository": "apple/ml-4m", "commit": args.commit or ml4m_commit(args.ml4m),
                 "license": "Apache-2.0"},
        "versions": versions(),
        "generator": "bench/ml4m_parity/make_fixtures.py",
        "key": "sample * max_key**2 + modality index (sorted names) * max_key + index in the modality tensor",
        "weights": ("ml-4m random init; LayerNorm weights 1 + N(0, 0.1^2), biases N(0, 0.02^2); vocabulary "
                    f"tables keep {args.keep_rows} random rows per modality (+ [PAD], [EOS], [S_0..2]) and are zero "
                    "elsewhere; parameters rounded to fp16 before running (stored fp16), buffers fp32"),
        "fixtures": {},
    }
    old = args.out / "manifest.json"
    if args.only and old.is_file():
        manifest["fixtures"] = json.loads(old.read_text())["fixtures"]
    if "fm_4m7" in todo:
        manifest["fixtures"]["fm_4m7"] = make_fm(ml4m, "fm_4m7", MOD7_IN, MOD7_OUT, {}, args.out, args.keep_rows,
                                             scenario_4m7)
    if "fm_4m21" in todo:
        manifest["fixtures"]["fm_4m21"] = make_fm(ml4m, "fm_4m21", MOD21_IN, MOD21_OUT,
                                                  {"share_modality_embeddings": False}, args.out, args.keep_rows,
                                                  scenario_random(set(MOD21_IN), set(MOD21_OUT)))
    import fourm.vq.models.vit_models as vit_models
    from fourm.data.modality_info import MODALITY_INFO

    shrink_vit_b(vit_models)
    n_labels = MODALITY_INFO["semseg_coco"]["num_labels"]
    semseg = {"image_size": 16, "n_channels": 16, "n_labels": n_labels, "enc_type": "vit_b_enc", "dec_type": "vit_b_dec",
              "patch_proj": True, "post_mlp": True, "patch_size": 4, "quant_type": "lucid", "codebook_size": 4096,
              "latent_dim": 32, "norm_codes": True, "sync_codebook": False, "out_conv": False}
    g = torch.Generator().manual_seed(SEED + 11)
    labels = torch.randint(0, n_labels, (2, 16, 16), generator=g)
    labels[:, 4:10, 2:12] = 7  # a region of one class
    if "vqvae_semseg" in todo:
        manifest["fixtures"]["vqvae_semseg"] = make_vqvae("vqvae_semseg", semseg, labels, args.out)
        manifest["fixtures"]["vqvae_semseg"]["vit_b_preset"] = VIT_SMALL
    glob = {"image_size": 224, "n_channels": 768, "enc_type": "BottleneckMLP/B_2-Wi_64",
            "dec_type": "BottleneckMLP/B_2-Wi_64", "patch_size": 14, "quant_type": "memcodes", "codebook_size": 8192,
            "num_codebooks": 8, "latent_dim": 64, "sync_codebook": False}
    feats = torch.randn(4, 768, 1, 1, generator=torch.Generator().manual_seed(SEED + 12))
    if "vqvae_global" in todo:
        manifest["fixtures"]["vqvae_global"] = make_vqvae("vqvae_global", glob, feats, args.out)
    if "text" in todo:
        manifest["fixtures"]["text"] = make_text(args.out)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out} ({total / 1e6:.2f} MB)")
    for f in sorted(args.out.rglob("*")):
        if f.is_file():
            print(f"  {f.relative_to(args.out)}  {f.stat().st_size / 1e3:.1f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
