"""Retrieval over agent memory on LanceDB: vector, full-text and hybrid search, by version.

One LanceDB table (``memory_index``) holds every agent's facts and the knowledge chunks.
Each refresh reads the memory table's change data feed, re-embeds only what changed, and
tags the table version ``memory-v{N}``; ``search(..., as_of_version=N)`` reads that tag.

    >>> from memory.retrieval import MemoryIndex
    >>> index = MemoryIndex("data/lance")  # doctest: +SKIP
    >>> index.refresh_facts("data/lake/memory_facts")  # doctest: +SKIP
    >>> index.search("discount approval", agent_id="finance-01", k=5)  # doctest: +SKIP
"""

from memory.embedders import (
    Embedder,
    EmbedderUnavailableError,
    HashingEmbedder,
    SentenceTransformerEmbedder,
)
from memory.retrieval.errors import (
    EmbedderMismatchError,
    IndexNotFoundError,
    IndexVersionNotFoundError,
    RetrievalError,
)
from memory.retrieval.index import (
    DEFAULT_TABLE,
    Hit,
    HitKind,
    IndexInfo,
    MemoryIndex,
    RefreshMode,
    RefreshResult,
    SearchMode,
)

__all__ = [
    "DEFAULT_TABLE",
    "EmbedderMismatchError",
    "Embedder",
    "EmbedderUnavailableError",
    "HashingEmbedder",
    "Hit",
    "HitKind",
    "IndexInfo",
    "IndexNotFoundError",
    "IndexVersionNotFoundError",
    "MemoryIndex",
    "RefreshMode",
    "RefreshResult",
    "RetrievalError",
    "SearchMode",
    "SentenceTransformerEmbedder",
]
