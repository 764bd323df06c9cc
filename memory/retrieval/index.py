"""``MemoryIndex``: facts and knowledge chunks on LanceDB, pinned to memory versions.

The facade over the index's parts: ``_handles`` (table handles), ``_refresh`` (facts from
the memory table), ``_chunks`` (knowledge chunks), ``_search``, ``_snapshots`` (tags) and
``_maintenance``; every write holds the writer lock of ``_lock``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Literal

import lancedb
import polars as pl
import pyarrow as pa

from memory.embedders import Embedder, default_embedder
from memory.model import check_agent_id, check_text, check_version
from memory.retrieval import _changes as ch
from memory.retrieval import _chunks, _handles, _lock, _maintenance, _refresh, _search, _snapshots
from memory.retrieval import _layout as lay
from memory.retrieval.results import Hit, HitKind, IndexInfo, RefreshResult, SearchMode

DEFAULT_TABLE = "memory_index"
_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class MemoryIndex:
    """Retrieval over agent memory and knowledge chunks, on one LanceDB table.

    Facts come from the memory table (``refresh_facts``), knowledge chunks from the caller
    (``upsert_chunks``, ``replace_chunks``, ``sync_chunks``). The first refresh to a memory
    version ``N`` tags the table version it wrote ``memory-v{N}``, so ``search(...,
    as_of_version=N)`` reads the index exactly as it was then; a tag never moves afterwards.

    Writers take turns: every write method holds the index's writer lock, a file lock beside
    the table for a local database (``<uri>/<table>.lock``), so writers in any number of
    processes on one machine are serialised. Object stores have no such lock: there, only
    writers within one process take turns, and the scheduler must run one writer at a time.
    Any number may search, during writes too.

    Args:
        uri: The LanceDB database: a local folder or an object-store URI.
        embedder: Turns texts into vectors; ``HashingEmbedder()`` when ``None``. An index
            refuses to be searched or written with an embedder other than the one that built it.
        table: The table's name in the database.
        storage_options: Object-store options passed to LanceDB (credentials, region...).
        read_consistency_interval: How stale a reader may be about writes from other
            processes; ``timedelta(0)`` checks on every search (free on local disk, one
            request on object storage), ``None`` never re-checks.

    Example:
        >>> index = MemoryIndex("data/lance")  # doctest: +SKIP
        >>> index.refresh_facts("data/lake/memory_facts")  # doctest: +SKIP
        >>> index.search("who approves discounts", agent_id="finance-01")  # doctest: +SKIP
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        *,
        embedder: Embedder | None = None,
        table: str = DEFAULT_TABLE,
        storage_options: Mapping[str, str] | None = None,
        read_consistency_interval: timedelta | None = timedelta(0),
    ) -> None:
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"table must be 1-128 letters, digits or _ . -, got {table!r}.")
        self._uri = os.fspath(uri).rstrip("/")
        self._embedder = embedder if embedder is not None else default_embedder()
        if not isinstance(self._embedder, Embedder):
            raise ValueError("embedder must have name, dim and embed(texts), like HashingEmbedder.")
        self._name = table
        options = dict(storage_options or {})
        db = lancedb.connect(
            self._uri,
            read_consistency_interval=read_consistency_interval,
            storage_options=options or None,
        )
        self._handles = _handles.Handles(db, self._uri, table, self._embedder)

    @property
    def uri(self) -> str:
        """The LanceDB database the index lives in."""
        return self._uri

    @property
    def embedder(self) -> Embedder:
        """The embedder this object queries and writes with."""
        return self._embedder

    def __repr__(self) -> str:
        return f"MemoryIndex({self._uri!r}, table={self._name!r}, embedder={self._embedder.name!r})"

    # -- facts ----------------------------------------------------------------------------

    def refresh_facts(
        self,
        facts_uri: str | os.PathLike[str],
        *,
        version: int | None = None,
        full: bool = False,
        storage_options: Mapping[str, str] | None = None,
    ) -> RefreshResult:
        """Bring the indexed facts up to a version of the memory table, then tag it.

        Incremental when possible: only facts the change data feed shows changed since the
        indexed version are embedded and written (commits and rollbacks alike). A full pass
        (compare every fact with the index, embed those that differ) runs on the first build,
        when asked, when the feed cannot be read (log cleaned up, change files lost), when the
        memory table was recreated, when ``version`` is older than the indexed one, or when
        the facts the index holds, changed as the feed says, would not be the memory's (its
        history was replaced behind the index): what the index holds is compared with the
        memory table on every refresh, so a fact deleted from the memory always leaves it.

        Args:
            facts_uri: The memory table (``<lake>/memory_facts``).
            version: The memory version to reflect; the latest when ``None``.
            full: Skip the change feed and compare every fact.
            storage_options: Object-store options for the memory table.

        Returns:
            What was done; ``memory_version`` is now searchable with ``as_of_version``.

        Raises:
            UnknownVersionError: No memory table, or no such version.
            VersionVacuumedError: The version can no longer be read.
            EmbedderMismatchError: The index was built by another embedder.
        """
        started = time.perf_counter()
        if version is not None:
            check_version(version)
        with self._writing():
            # Opened holding the lock, so "latest" is never older than what a writer that went
            # first has indexed.
            facts = ch.open_facts(os.fspath(facts_uri), storage_options, version)
            table = self._handles.writable()
            done = _refresh.refresh(table, facts, self._embedder, full=full)
        return replace(done, seconds=_since(started))

    # -- knowledge chunks -----------------------------------------------------------------

    def upsert_chunks(self, chunks: pl.DataFrame | pa.Table) -> RefreshResult:
        """Add knowledge chunks, or replace those with the same ``chunk_id`` (and agent).

        Only chunks whose text, namespace or document changed are embedded and written.

        Args:
            chunks: One row per chunk with columns ``chunk_id``, ``document`` and ``text``,
                and optionally ``namespace`` (``"knowledge"`` when missing or null) and
                ``agent_id`` (null: shared with every agent); other columns are ignored.

        Returns:
            What was written; the memory version is unchanged.
        """
        return self._write_chunks(_chunks.chunk_rows(chunks), scope=None)

    def replace_chunks(
        self, chunks: pl.DataFrame | pa.Table, *, documents: Iterable[str] | None = None
    ) -> RefreshResult:
        """Make the index hold exactly ``chunks`` for each of their documents, in one write.

        Chunks of those documents that are not in ``chunks`` are deleted, so re-chunking a
        changed document leaves no stale chunk behind; unchanged chunks are not re-embedded.

        Args:
            chunks: As for ``upsert_chunks``.
            documents: Further documents whose chunks all go (documents deleted at the source);
                pass an empty ``chunks`` frame to only delete.
        """
        rows = _chunks.chunk_rows(chunks)
        names = set(rows.get_column("source").to_list())
        names |= {check_text(d, "document") for d in documents or ()}  # type: ignore[misc]
        if not names:
            raise ValueError("replace_chunks needs chunks or documents to replace.")
        return self._write_chunks(rows, scope=names)

    def sync_chunks(self, chunks: pl.DataFrame | pa.Table) -> RefreshResult:
        """Make the index hold exactly ``chunks`` and no other knowledge chunk, in one write.

        What to remove is read from the index itself, so a document deleted at the source
        leaves the index however many times the source changed since the last write; chunks
        written by ``upsert_chunks`` or ``replace_chunks`` and absent from ``chunks`` go too.
        Unchanged chunks are not embedded again.

        Args:
            chunks: Every chunk the index should hold, as for ``upsert_chunks`` (may be empty:
                then every chunk goes; with no index yet, nothing is created).

        Example:
            >>> index.sync_chunks(pl.read_delta("data/lake/knowledge_chunks"))  # doctest: +SKIP
        """
        return self._write_chunks(_chunks.chunk_rows(chunks), scope="all")

    def _write_chunks(
        self, rows: pl.DataFrame, *, scope: set[str] | Literal["all"] | None
    ) -> RefreshResult:
        started = time.perf_counter()
        with self._writing():
            if rows.is_empty() and self._handles.latest() is None:
                return RefreshResult("chunks", None, None, 0, 0, False, _since(started), None, 0)
            table = self._handles.writable()
            done = _chunks.write_chunks(table, self._embedder, rows, scope=scope)
        return replace(done, seconds=_since(started))

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        agent_id: str | None = None,
        namespace: str | Sequence[str] | None = None,
        kind: HitKind | None = None,
        k: int = 5,
        mode: SearchMode = "hybrid",
        as_of_version: int | None = None,
        include_shared: bool = True,
    ) -> list[Hit]:
        """The ``k`` facts and chunks that best match ``query``, best first.

        Args:
            query: What to look for, in plain words.
            agent_id: Only this agent's facts and chunks (plus shared chunks, see
                ``include_shared``); every agent's when ``None``.
            namespace: Only this namespace, or any of these namespaces.
            kind: Only ``"fact"`` or only ``"chunk"`` rows.
            k: How many hits at most (1-1000).
            mode: ``"vector"`` (embedding similarity), ``"text"`` (BM25 full-text), or
                ``"hybrid"`` (both lists fused by reciprocal rank).
            as_of_version: Search the snapshot taken when the index was refreshed at this
                memory version; the latest index when ``None``. Only versions the index was
                refreshed at have a snapshot: another version raises rather than answer with
                a neighbour that may hold facts the asked version did not.
            include_shared: With ``agent_id``, also return shared knowledge chunks.

        Raises:
            IndexNotFoundError: Nothing was indexed yet.
            IndexVersionNotFoundError: No snapshot of ``as_of_version``.
            EmbedderMismatchError: The index was built by another embedder.
        """
        query = _search.check(query, k=k, mode=mode, kind=kind)
        where = lay.where(
            agent_id=None if agent_id is None else check_agent_id(agent_id),
            namespaces=_search.namespaces(namespace),
            kind=kind,
            include_shared=include_shared,
        )
        table, version = self._handles.snapshot(as_of_version)
        found = _search.search(table, self._embedder, query, where=where, k=k, mode=mode)
        return _search.hits(found, version)

    # -- versions and maintenance ---------------------------------------------------------

    def memory_version(self) -> int | None:
        """The memory version the latest index reflects; ``None`` before the first refresh."""
        table = self._handles.latest()
        return None if table is None else lay.read_state(table.schema).memory_version

    def versions(self) -> list[int]:
        """Memory versions the index holds snapshots of (``as_of_version`` values), oldest first."""
        table = self._handles.latest()
        return [] if table is None else _snapshots.memory_versions(table)

    def info(self) -> IndexInfo:
        """Counts, embedder and versions of the latest index.

        Raises:
            IndexNotFoundError: Nothing was indexed yet.
        """
        table = self._handles.require()
        state = lay.read_state(table.schema)
        return IndexInfo(
            embedder=state.embedder,
            memory_version=state.memory_version,
            versions=_snapshots.memory_versions(table),
            facts=table.count_rows(f"kind = {lay.quote(lay.FACT)}"),
            chunks=table.count_rows(f"kind = {lay.quote(lay.CHUNK)}"),
            index_version=table.version,
        )

    def optimize(self, *, retrain: bool = False) -> None:
        """Fold unindexed rows into the indexes, compact small files, remove old versions.

        Writes fold rows in by themselves once ``OPTIMIZE_AFTER_ROWS`` are unindexed; call it
        from a maintenance job to do it sooner and to reclaim space. Table versions older
        than 7 days are removed, but the cleanup stops at the oldest tagged version (the
        oldest snapshot): LanceDB refuses to clean up a tagged version, so that version and
        every later one stay, tagged or not, and every memory version ``versions()`` lists
        stays searchable. Only ``prune_versions`` moves that point forward.

        Args:
            retrain: Also retrain the vector index's partitions on the current rows.
        """
        with self._writing():
            _maintenance.optimize(self._handles.writable(), retrain=retrain)

    def prune_versions(self, *, keep: int) -> list[int]:
        """Forget all but the newest ``keep`` memory-version snapshots.

        ``optimize`` removes no version from the oldest snapshot on, so without this the
        index keeps every version since its first refresh: call it from a maintenance job.
        The next ``optimize`` then removes the versions older than both 7 days and the
        oldest snapshot kept.

        Args:
            keep: How many snapshots to keep (the newest, including the current one).

        Returns:
            The memory versions that can no longer be searched with ``as_of_version``.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive integer, got {keep!r}.")
        with self._writing():
            return _maintenance.prune(self._handles.writable(), keep=keep)

    def drop(self) -> None:
        """Delete the index table, every version and snapshot of it (to change embedder)."""
        with self._writing():
            self._handles.drop()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the index's writer lock (write methods only; not reentrant)."""
        with _lock.exclusive(self._uri, self._name):
            yield


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)
