"""Cross-modal retrieval with FourM embeddings: embed items of any modalities (pooled encoder output
a predicted global-embedding vector modality, or a regressed continuous one), index them, search and evaluate recall@k.

    from fourm.retrieval import EmbeddingIndex, PooledEmbedder, evaluate_pair

    embedder = PooledEmbedder(model)
    embedder.fit_centers(reference_items)                 # per-modality centres
    keys = embedder([{"rgb": ids} for ids in rgb_tokens]) # (N, D), unit norm
    index = EmbeddingIndex(keys)
    scores, rows = index.search(embedder([{"caption": caption_ids}]), k=5)
"""

from fourm.retrieval.embed import PooledEmbedder, PredictedEmbedder, vector_modality
from fourm.retrieval.evaluate import evaluate_pair, positive_ranks, recall_at_k
from fourm.retrieval.index import EmbeddingIndex, faiss_available
from fourm.retrieval.items import pack_items, signature
from fourm.retrieval.regressed import RegressedEmbedder

__all__ = [
    "EmbeddingIndex",
    "PooledEmbedder",
    "PredictedEmbedder",
    "RegressedEmbedder",
    "evaluate_pair",
    "faiss_available",
    "pack_items",
    "positive_ranks",
    "recall_at_k",
    "signature",
    "vector_modality",
]
