"""Tiny bad-input fixtures for the ``test_bad_inputs_*`` tests: broken files of every kind the CLIs
read, written into one folder whose hash the tests compare before and after each command."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

NON_UTF8 = b"name: caf\xe9\nkind: image\n"  # latin-1, not UTF-8
BINARY = bytes(range(256)) * 4  # NUL bytes and everything else


def tree_hash(root: Path) -> str:
    """One hash of every path, file content and mode under ``root``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode("utf-8", "surrogateescape"))
        h.update(oct(path.stat().st_mode).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, side: int = 100_000) -> Path:
    """A ~100-byte PNG that declares ``side`` x ``side`` pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def corrupt_model_dir(src: Path, dst: Path, how: str) -> Path:
    """A copy of the saved model ``src`` with a damaged ``model.safetensors`` (``how``: garbage,
    truncated, huge_header) or config (``dim65536``: a config that does not match the weights)."""
    shutil.copytree(src, dst)
    weights = dst / "model.safetensors"
    if how == "garbage":
        weights.write_bytes(BINARY)
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "huge_header":
        weights.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    elif how == "dim65536":
        cfg = json.loads((dst / "config.json").read_text())
        cfg["dim"] = 65536
        (dst / "config.json").write_text(json.dumps(cfg))
    else:
        raise ValueError(how)
    return dst


def write_index(path: Path, info: dict | None, meta_changes: dict | None = None, raw: bytes | None = None) -> Path:
    """A retrieval index directory with a 1 x 4 embedding, the given build ``info`` (or raw bytes
    as index.json)."""
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({"embeddings": torch.nn.functional.normalize(torch.ones(1, 4), dim=1)}, str(path / "embeddings.safetensors"))
    if raw is not None:
        (path / "index.json").write_bytes(raw)
        return path
    meta = {"format": "fourm-index", "version": 1, "count": 1, "dim": 4, "info": info, "ids": ["a"]}
    meta.update(meta_changes or {})
    (path / "index.json").write_text(json.dumps(meta))
    return path


def grey16_png(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path
