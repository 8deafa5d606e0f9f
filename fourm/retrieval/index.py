"""An exact inner-product index over embeddings, saved as a directory.

Search uses faiss ``IndexFlatIP`` when ``faiss`` imports and plain torch matmul + top-k otherwise
(``backend="faiss"`` / ``"torch"`` to choose); both are exact, so they return the same neighbours.
For cosine similarity, store and query l2-normalised embeddings (both embedding methods do).

Layout of a saved index (written atomically)::

    <dir>/index.json                 info: count, dim, ids, and what built it (method, model, data, ...)
    <dir>/embeddings.safetensors     "embeddings" (N, D) fp32, plus any extra tensors ("center.<name>")

    index = EmbeddingIndex(embeddings, ids=["a", "b"], info={"method": "pooled"})
    scores, rows = index.search(queries, k=5)        # (Q, 5) fp32, (Q, 5) long, best first
    index.save("runs/idx"); EmbeddingIndex.load("runs/idx")
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.config import read_json_object

INFO_NAME = "index.json"
WEIGHTS_NAME = "embeddings.safetensors"
BACKENDS = ("auto", "faiss", "torch")


def check_index_meta(meta: dict, where: object) -> None:
    """FourmError naming the field when an ``index.json`` object has fields of the wrong type."""

    def bad(field: str, expected: str) -> FourmError:
        return FourmError(f"corrupt retrieval index file {where}: '{field}' must be {expected}, got {meta.get(field)!r:.80}")

    for field in ("count", "dim"):
        if not isinstance(meta.get(field), int) or isinstance(meta.get(field), bool) or meta[field] < 0:
            raise bad(field, "an integer >= 0")
    ids = meta.get("ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise bad("ids", "a list of strings")
    if meta.get("info") is not None and not isinstance(meta.get("info"), dict):
        raise bad("info", "a JSON object")


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _as_matrix(x: Tensor, what: str, dim: int | None = None) -> Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or not x.dtype.is_floating_point:
        raise FourmError(f"{what} must be a float matrix (N, D), got {x.dtype} of shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise FourmError(f"{what} have dimension {x.shape[1]}, the index has {dim}")
    if not bool(torch.isfinite(x).all()):
        raise FourmError(f"{what} hold NaN or infinite values")
    return x.detach().float().cpu().contiguous()


class EmbeddingIndex:
    """Embeddings (N, D) with their ids and build info; exact top-k by inner product."""

    def __init__(
        self,
        embeddings: Tensor,
        ids: Sequence[str] | None = None,
        info: Mapping[str, Any] | None = None,
        extra: Mapping[str, Tensor] | None = None,
        backend: str = "auto",
    ) -> None:
        if backend not in BACKENDS:
            raise FourmError(f"unknown index backend '{backend}' (expected {', '.join(BACKENDS)})")
        if backend == "faiss" and not faiss_available():
            raise FourmError("backend 'faiss' needs the faiss package (pip install 'fourm[retrieval]')")
        self.embeddings = _as_matrix(embeddings, "embeddings")
        if self.embeddings.shape[0] == 0:
            raise FourmError("an index needs at least one embedding")
        self.ids = [str(i) for i in (ids if ids is not None else range(len(self)))]
        if len(self.ids) != len(self):
            raise FourmError(f"got {len(self.ids)} ids for {len(self)} embeddings")
        self.info = dict(info or {})
        self.extra = {k: torch.as_tensor(v).detach().float().cpu().contiguous() for k, v in (extra or {}).items()}
        self.backend = "faiss" if backend == "faiss" or (backend == "auto" and faiss_available()) else "torch"
        self._faiss = None

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def _faiss_index(self):
        if self._faiss is None:
            import faiss

            self._faiss = faiss.IndexFlatIP(self.dim)
            self._faiss.add(self.embeddings.numpy())
        return self._faiss

    def search(self, queries: Tensor, k: int, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
        """Queries (Q, D) -> (scores (Q, k') fp32, rows (Q, k') long), best first, k' = min(k, N)."""
        queries = _as_matrix(queries, "queries", self.dim)
        if k < 1:
            raise FourmError(f"k must be >= 1, got {k}")
        k = min(k, len(self))
        if self.backend == "faiss":
            scores, rows = self._faiss_index().search(queries.numpy(), k)
            return torch.from_numpy(scores), torch.from_numpy(rows).long()
        out_s, out_r = [], []
        for chunk in queries.split(batch_size):
            s, r = (chunk @ self.embeddings.T).topk(k, dim=1)
            out_s.append(s)
            out_r.append(r)
        return torch.cat(out_s), torch.cat(out_r)

    # ---------------------------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write the index directory ``path`` (replaced atomically); returns it."""
        from safetensors.torch import save_file

        tensors = {"embeddings": self.embeddings, **{f"extra.{k}": v for k, v in self.extra.items()}}
        meta = {"format": "fourm-index", "version": 1, "count": len(self), "dim": self.dim, "info": self.info,
                "ids": self.ids}
        with atomic_dir(path) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_NAME))
            (tmp / INFO_NAME).write_text(json.dumps(meta, indent=1) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto") -> EmbeddingIndex:
        """Load an index saved by :meth:`save`; FourmError for a missing or damaged directory."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / INFO_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise FourmError(f"{path} is not a retrieval index (expected {INFO_NAME} and {WEIGHTS_NAME}; build one with "
                             "`fourm-retrieve index`)")
        try:
            meta = read_json_object(path / INFO_NAME, "retrieval index file")
            tensors = load_file(str(path / WEIGHTS_NAME))
        except (FourmError, SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise FourmError(f"corrupt retrieval index {path}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
        if meta.get("format") != "fourm-index" or "embeddings" not in tensors:
            raise FourmError(f"{path} is not a fourm retrieval index")
        check_index_meta(meta, path / INFO_NAME)
        extra = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
        index = cls(tensors["embeddings"], meta.get("ids"), meta.get("info"), extra, backend)
        if len(index) != meta.get("count") or index.dim != meta.get("dim"):
            raise FourmError(f"corrupt retrieval index {path}: {INFO_NAME} does not match {WEIGHTS_NAME}")
        return index
