"""Texts to vectors with the index's embedder, checked and batched."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memory.embedders import Embedder
from memory.retrieval.errors import RetrievalError

EMBED_BATCH = 8_192


def embed(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """One float32 row per text, embedded in batches; a wrong shape is refused."""
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        batch = list(texts[start : start + EMBED_BATCH])
        vectors = np.asarray(embedder.embed(batch), dtype=np.float32)
        if vectors.shape != (len(batch), embedder.dim):
            raise RetrievalError(
                f"embedder {embedder.name!r} returned shape {vectors.shape} for "
                f"{len(batch)} texts; expected ({len(batch)}, {embedder.dim})."
            )
        parts.append(vectors)
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)


def query_vector(embedder: Embedder, query: str) -> np.ndarray | None:
    """The query's vector; ``None`` when it is all zeros (nothing the embedder could use)."""
    vector = embed(embedder, [query])[0]
    return vector if np.any(vector) else None
