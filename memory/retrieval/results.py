"""What the retrieval index hands out: search hits, refresh reports, index summaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SearchMode = Literal["hybrid", "vector", "text"]
HitKind = Literal["fact", "chunk"]
RefreshMode = Literal["noop", "incremental", "full", "chunks"]


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: The fact id, or the chunk id.
        kind: ``"fact"`` or ``"chunk"``.
        agent_id: The agent holding the fact or chunk; ``None`` for a shared chunk.
        namespace: The fact's namespace, or the chunk's (``"knowledge"`` by default).
        content: The fact's content, or the chunk's text.
        score: Higher is better. Vector: cosine similarity; text: BM25; hybrid: reciprocal
            rank fusion of both lists (``sum(1 / (60 + rank))``).
        memory_version: The memory version the searched index snapshot reflects.
        source: The fact's source (trace or event id), or the chunk's document.
    """

    id: str
    kind: HitKind
    agent_id: str | None
    namespace: str
    content: str
    score: float
    memory_version: int | None
    source: str | None = None


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh or chunk write did, for logs and asset metadata.

    Attributes:
        mode: ``noop`` (already current), ``incremental`` (change data feed), ``full``
            (compared every fact with the index), or ``chunks`` (a knowledge write).
        memory_version: The memory version the index reflects afterwards.
        previous_version: The memory version it reflected before.
        upserted: Rows written (and embedded).
        deleted: Rows removed.
        optimized: Whether new rows were folded into the indexes.
        seconds: Wall time.
        reason: Why a full rebuild was needed (``None`` otherwise).
        index_version: The LanceDB table version written (0 when there is no index yet).
    """

    mode: RefreshMode
    memory_version: int | None
    previous_version: int | None
    upserted: int
    deleted: int
    optimized: bool
    seconds: float
    reason: str | None
    index_version: int


@dataclass(frozen=True)
class IndexInfo:
    """What an index holds: counts, the embedder, and the memory versions it can search."""

    embedder: str | None
    memory_version: int | None
    versions: list[int]
    facts: int
    chunks: int
    index_version: int
