"""Retrieval over agent memory on LanceDB: vector, full-text and hybrid search, by version.

One LanceDB table (``memory_index``) holds every agent's facts (``kind="fact"``) and the
knowledge chunks (``kind="chunk"``, ``agent_id="*"`` when shared). Rows are keyed
``fact/<agent>/<fact_id>`` and ``chunk/<agent or *>/<chunk_id>``; the ``vector`` field's
metadata records the embedder, the memory version the facts reflect and the memory table's
Delta id, so every table version describes itself.

A refresh reads the memory table's change data feed since the indexed version, checks it
against the facts the index holds, embeds only the facts that changed, writes them and the
deletions as ONE table version, and tags it ``memory-v{N}``; ``search(..., as_of_version=N)``
reads that tag, which never moves once written. Writers take turns: every write holds a file
lock beside the table (``<uri>/memory_index.lock``).

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
from memory.retrieval.index import DEFAULT_TABLE, MemoryIndex
from memory.retrieval.results import (
    Hit,
    HitKind,
    IndexInfo,
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
