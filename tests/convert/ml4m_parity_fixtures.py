"""Test helpers: read the fixtures written by the unmodified ml-4m code (tests/fixtures/ml4m/, made by
bench/ml4m_parity/make_fixtures.py), and pack their ml-4m-style masked inputs as fourm batches.

No ml-4m code is needed: the fixtures hold ml-4m's weights (hub layout, xz-compressed), its inputs
(per modality ``tensor`` / ``input_mask`` / ``target_mask`` / ``decoder_attention_mask``, True =
not used) and its outputs, every token keyed by ``sample * K**2 + modality index * K + index in the
modality's tensor`` (K = ``max_key``; modality index into the sorted ml-4m names).
"""

from __future__ import annotations

import json
import lzma
import shutil
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from torch import Tensor

from fourm.core.batch import MultimodalBatch
from fourm.core.patches import patchify

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ml4m"
TOLERANCE = 1e-4  # max abs error, fp32


def manifest() -> dict:
    return json.loads((FIXTURES / "manifest.json").read_text())


def unpack(name: str, dest: Path) -> Path:
    """Fixture ``name`` as its files would be on disk (``*.xz`` decompressed) in ``dest / name``."""
    src, out = FIXTURES / name, dest / name
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.suffix == ".xz":
            (out / f.stem).write_bytes(lzma.decompress(f.read_bytes()))
        else:
            shutil.copy(f, out / f.name)
    return out


def read_io(name: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of ``io.safetensors`` of fixture ``name``."""
    data = lzma.decompress((FIXTURES / name / "io.safetensors.xz").read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8 : 8 + n]).get("__metadata__", {})
    return load_safetensors_bytes(data), meta


class Packed:
    """An ml-4m input dict packed as a fourm batch, with the key of every fourm token."""

    def __init__(self, batch: MultimodalBatch, enc_key: Tensor, dec_key: Tensor):
        self.batch, self.enc_key, self.dec_key = batch, enc_key, dec_key


def pack(model, io: dict[str, Tensor], ml4m_names: list[str], max_key: int) -> Packed:
    """The inputs of an FM fixture as one fourm batch: encoder tokens where ``input_mask`` is False
    (image / pixel modalities at their grid index, sequences at their rank among the given tokens),
    decoder tokens where ``target_mask`` is False (image targets at their grid index; sequence
    targets as (token k -> token k + 1) at position k, keyed by the tensor index of token k)."""
    names = model.modality_names
    cfg = model.config
    mods = sorted({k.split(".")[1] for k in io if k.startswith("in.")})
    batch_size = io[f"in.{mods[0]}.input_mask"].shape[0]
    p_dim = cfg.patch_width
    rows = []
    for b in range(batch_size):
        enc = {k: [] for k in ("tok", "mod", "pos", "patch", "key")}
        dec = {k: [] for k in ("inp", "tgt", "mod", "pos", "key")}
        for m in mods:
            mi = ml4m_names.index(m)
            tensor = io[f"in.{m}.tensor"][b]
            mc = cfg.modalities.get(m)
            if mc is None:
                continue
            if mc.input:
                idx = (~io[f"in.{m}.input_mask"][b]).nonzero()[:, 0].tolist()
                patches = None
                if mc.patch_dim:
                    patches = torch.from_numpy(patchify(tensor.numpy(), int(round((mc.patch_dim // 3) ** 0.5))))
                for j, i in enumerate(idx):
                    enc["mod"].append(names.index(m))
                    enc["key"].append(mi * max_key + i)
                    if patches is not None:
                        enc["tok"].append(0)
                        enc["pos"].append(i)
                        enc["patch"].append(patches[i])
                    else:
                        enc["tok"].append(int(tensor[i]))
                        enc["pos"].append(j if mc.kind == "sequence" else i)
                        enc["patch"].append(torch.zeros(p_dim, dtype=torch.uint8))
            if mc.target:
                idx = (~io[f"in.{m}.target_mask"][b]).nonzero()[:, 0].tolist()
                if mc.kind == "sequence":
                    assert idx == list(range(idx[0], idx[0] + len(idx))) if idx else True, "targets not contiguous"
                    for k in range(len(idx) - 1):
                        dec["inp"].append(int(tensor[idx[k]]))
                        dec["tgt"].append(int(tensor[idx[k + 1]]))
                        dec["mod"].append(names.index(m))
                        dec["pos"].append(k)
                        dec["key"].append(mi * max_key + idx[k])
                else:
                    for i in idx:
                        dec["inp"].append(0)
                        dec["tgt"].append(int(tensor[i]))
                        dec["mod"].append(names.index(m))
                        dec["pos"].append(i)
                        dec["key"].append(mi * max_key + i)
        rows.append((enc, dec))
    ne = max(len(e["tok"]) for e, _ in rows) + 1
    nd = max(len(d["inp"]) for _, d in rows) + 1

    def col(values: list[int], n: int) -> Tensor:
        return torch.tensor(values + [0] * (n - len(values)), dtype=torch.long)

    def stack(side: int, key: str, n: int) -> Tensor:
        return torch.stack([col(r[side][key], n) for r in rows])

    patches = []
    for e, _ in rows:
        pad = [torch.zeros(p_dim, dtype=torch.uint8)] * (ne - len(e["patch"]))
        patches.append(torch.stack(e["patch"] + pad) if e["patch"] or pad else torch.zeros(0, p_dim, dtype=torch.uint8))
    batch = MultimodalBatch(
        enc_tokens=stack(0, "tok", ne), enc_modality=stack(0, "mod", ne), enc_position=stack(0, "pos", ne),
        enc_valid=torch.stack([torch.arange(ne) < len(e["tok"]) for e, _ in rows]),
        dec_input=stack(1, "inp", nd), dec_target=stack(1, "tgt", nd), dec_modality=stack(1, "mod", nd),
        dec_position=stack(1, "pos", nd), dec_valid=torch.stack([torch.arange(nd) < len(d["inp"]) for _, d in rows]),
        enc_patches=torch.stack(patches) if p_dim else None,
    )
    return Packed(batch, stack(0, "key", ne), stack(1, "key", nd))


def by_key(values: Tensor, keys: Tensor, valid: Tensor, sample_stride: int) -> tuple[Tensor, Tensor]:
    """Rows of ``values`` (B, N, ...) where ``valid``, sorted by global key (sample-major)."""
    b = torch.arange(values.shape[0])[:, None].expand_as(keys)
    glob = (b * sample_stride + keys)[valid]
    order = torch.argsort(glob)
    return glob[order], values[valid][order]


def max_abs(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def as_numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
