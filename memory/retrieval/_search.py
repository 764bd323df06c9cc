"""Searching one pinned table version: vector, full-text, or both fused by reciprocal rank."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import numpy as np
import polars as pl
from lancedb.rerankers import RRFReranker
from lancedb.table import LanceTable

from memory.embedders import Embedder
from memory.retrieval import _layout as lay
from memory.retrieval import _vectors
from memory.retrieval.results import Hit, HitKind, SearchMode

MAX_K = 1_000
RRF_K = 60  # reciprocal rank fusion constant, as in the RRF paper (LanceDB's default too)
_FUSION = RRFReranker(K=RRF_K)
_FOUND = pl.Schema({**dict.fromkeys(lay.HIT_COLUMNS, pl.String), "score": pl.Float64})


def check(query: object, *, k: object, mode: object, kind: object) -> str:
    """The query, once every search argument is known to be usable; else ``ValueError``."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty string, got {query!r}.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer between 1 and {MAX_K}, got {k!r}.")
    if mode not in get_args(SearchMode):
        raise ValueError(f"mode must be 'hybrid', 'vector' or 'text', got {mode!r}.")
    if kind is not None and kind not in get_args(HitKind):
        raise ValueError(f"kind must be 'fact', 'chunk' or None, got {kind!r}.")
    return query


def namespaces(namespace: str | Sequence[str] | None) -> list[str] | None:
    """The namespaces a search is limited to (``None``: all), checked."""
    if namespace is None:
        return None
    names = [namespace] if isinstance(namespace, str) else list(namespace)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(
            f"namespace must be a non-empty string or list of them, got {namespace!r}."
        )
    return names


def search(
    table: LanceTable,
    embedder: Embedder,
    query: str,
    *,
    where: str | None,
    k: int,
    mode: SearchMode,
) -> pl.DataFrame:
    """The best ``k`` rows of ``table`` for ``query``: ``HIT_COLUMNS`` and ``score``, best first."""
    if mode == "text":
        return _text(table, query, where, k)
    vector = _vectors.query_vector(embedder, query)
    if vector is None and mode == "vector":  # nothing in the query the embedder could use
        return pl.DataFrame(schema=_FOUND)
    if vector is None:  # one list to fuse: its ranks make the fused score
        ranked = _text(table, query, where, _depth(k, mode))
        return ranked.with_columns(score=1.0 / (RRF_K + pl.int_range(1, pl.len() + 1))).head(k)
    if mode == "vector":
        return _vector(table, vector, where, k)
    return _hybrid(table, vector, query, where, k)


def hits(rows: pl.DataFrame, memory_version: int | None) -> list[Hit]:
    """Found rows as ``Hit`` values (a shared chunk's agent is ``None``)."""
    found = []
    for row in rows.select(*lay.HIT_COLUMNS, "score").iter_rows(named=True):
        agent = row["agent_id"]
        found.append(
            Hit(
                id=row["item_id"],
                kind=row["kind"],
                agent_id=None if agent == lay.SHARED else agent,
                namespace=row["namespace"],
                content=row["text"],
                score=float(row["score"]),
                memory_version=memory_version,
                source=row["source"],
            )
        )
    return found


def _depth(k: int, mode: SearchMode) -> int:
    """How many rows each list fetches: more than ``k`` when two lists are fused."""
    return k if mode != "hybrid" else max(2 * k, 10)


def _vector(table: LanceTable, vector: np.ndarray, where: str | None, k: int) -> pl.DataFrame:
    """Nearest rows by cosine similarity."""
    search = table.search(vector, vector_column_name="vector").distance_type("cosine")
    if where:
        search = search.where(where, prefilter=True)
    found = lay.to_frame(search.select([*lay.HIT_COLUMNS, "_distance"]).limit(k).to_arrow())
    return found.select(*lay.HIT_COLUMNS, score=1.0 - pl.col("_distance").cast(pl.Float64))


def _text(table: LanceTable, query: str, where: str | None, k: int) -> pl.DataFrame:
    """Best rows by BM25."""
    search = table.search(query, query_type="fts", fts_columns="text")
    if where:
        search = search.where(where, prefilter=True)
    found = lay.to_frame(search.select([*lay.HIT_COLUMNS, "_score"]).limit(k).to_arrow())
    return found.select(*lay.HIT_COLUMNS, score=pl.col("_score").cast(pl.Float64))


def _hybrid(
    table: LanceTable, vector: np.ndarray, query: str, where: str | None, k: int
) -> pl.DataFrame:
    """Both lists, fused by LanceDB's reciprocal rank reranker (``sum(1 / (RRF_K + rank))``,
    ties in order of first appearance, vector list first)."""
    search = (
        table.search(query_type="hybrid", vector_column_name="vector", fts_columns="text")
        .vector(vector)
        .text(query)
        .distance_type("cosine")
    )
    if where:
        search = search.where(where, prefilter=True)
    # No select(): LanceDB's hybrid legs would warn that they add their score columns.
    found = search.limit(_depth(k, "hybrid")).rerank(_FUSION).to_arrow().slice(0, k)
    frame = lay.to_frame(found.select([*lay.HIT_COLUMNS, "_relevance_score"]))
    return frame.select(*lay.HIT_COLUMNS, score=pl.col("_relevance_score").cast(pl.Float64))
