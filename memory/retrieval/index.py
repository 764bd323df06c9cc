"""``MemoryIndex``: facts and knowledge chunks on LanceDB, pinned to memory versions."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Literal, get_args

import lancedb
import numpy as np
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from lancedb.index import FTS, Bitmap, BTree, IvfFlat
from lancedb.table import LanceTable

from memory.embedders import Embedder, default_embedder
from memory.model import check_agent_id, check_text, check_version
from memory.retrieval import _changes as ch
from memory.retrieval import _chunks, _lock, _search
from memory.retrieval import _layout as lay
from memory.retrieval.errors import (
    EmbedderMismatchError,
    IndexNotFoundError,
    IndexVersionNotFoundError,
    RetrievalError,
)
from memory.retrieval.results import (
    Hit,
    HitKind,
    IndexInfo,
    RefreshMode,
    RefreshResult,
    SearchMode,
)

log = logging.getLogger(__name__)

DEFAULT_TABLE = "memory_index"
VECTOR_INDEX_MIN_ROWS = 5_000
"""An IVF_FLAT index is trained once the table holds this many rows (2 cores, unfiltered:
12 ms flat vs 8.5 ms indexed at 5,000 rows, 20 vs 10.5 ms at 10,000; training takes 0.1 s)."""
OPTIMIZE_AFTER_ROWS = 2_000
"""A write folds new rows into the indexes once this many are unindexed (searched flat until)."""
RETRAIN_GROWTH = 4
"""The IVF partitions are retrained when the table has grown this many times since training."""

_EMBED_BATCH = 8_192
_MAX_K = 1_000
_SNAPSHOTS = 8  # time-travel handles kept open
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
        self._options = dict(storage_options or {})
        self._db = lancedb.connect(
            self._uri,
            read_consistency_interval=read_consistency_interval,
            storage_options=self._options or None,
        )
        self._latest: LanceTable | None = None
        self._snapshots: OrderedDict[int, tuple[LanceTable, lay.State]] = OrderedDict()
        self._lock = threading.Lock()  # searches may come from many threads

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
            target = facts.version()
            table = self._writable()
            previous = lay.read_state(table.schema).memory_version
            mode, changes, reason = self._fact_changes(table, facts, full=full)
            if mode == "noop" and self._tag_version(table, target) is not None:
                return RefreshResult(
                    "noop", target, previous, 0, 0, False, _since(started), None, table.version
                )
            delete_where = lay.in_list("id", changes.deletes) if changes.deletes else None
            upserted, deleted = self._write(table, changes.upserts, delete_where)
            optimized, meta = self._maintain(table)
            meta |= {lay.VERSION_KEY: str(target), lay.FACTS_TABLE_KEY: facts.metadata().id}
            table.update_field_metadata(lay.metadata_update(meta))
            self._tag(table, target)
        return RefreshResult(
            mode,
            target,
            previous,
            upserted,
            deleted,
            optimized,
            _since(started),
            reason,
            table.version,
        )

    def _fact_changes(
        self, table: LanceTable, facts: DeltaTable, *, full: bool
    ) -> tuple[RefreshMode, ch.Changes, str | None]:
        """What the index must write to reflect ``facts``: the mode, the changes, and why a
        full pass was needed (``None`` when the change feed did)."""
        target = facts.version()
        state = lay.read_state(table.schema)
        reason = _full_reason(full, state, target, facts.metadata().id)
        if reason is None and state.memory_version is not None:
            changes = ch.Changes()
            try:
                if target > state.memory_version:
                    changes = ch.read_changes(facts, state.memory_version + 1, target)
            except ch.ChangeFeedUnavailable as exc:
                reason = f"the change data feed cannot be read ({exc})"
            else:
                held = self._ids(table, lay.FACT)
                reason = ch.unaccounted(held, changes, ch.read_keys(facts))
                if reason is None:
                    mode: RefreshMode = "noop" if target == state.memory_version else "incremental"
                    return mode, changes, None
        log.info("full refresh of %s: %s", self, reason)
        return "full", ch.diff(ch.read_facts(facts), self._rows(table, lay.FACT)), reason

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
        """Write chunk ``rows`` and delete held chunks in ``scope`` that ``rows`` lacks: none
        (``None``), those of these documents, or ``"all"``."""
        started = time.perf_counter()
        with self._writing():
            if rows.is_empty() and self._table() is None:
                return RefreshResult("chunks", None, None, 0, 0, False, _since(started), None, 0)
            table = self._writable()
            held = self._rows(table, lay.CHUNK)
            if scope is None:  # upsert: compare with the same chunks, delete nothing
                held = held.join(rows.select("id"), on="id")
            elif scope != "all":
                held = held.filter(pl.col("source").is_in(sorted(scope)))
            work = ch.diff(rows, held, compare=_chunks.COMPARED)
            delete_where = lay.in_list("id", work.deletes) if work.deletes else None
            upserted, deleted = self._write(table, work.upserts, delete_where)
            optimized, meta = self._maintain(table)
            if meta:
                table.update_field_metadata(lay.metadata_update(meta))
            # No tag moves: the snapshot of the current memory version keeps the chunks it had.
            memory_version = lay.read_state(table.schema).memory_version
        return RefreshResult(
            "chunks",
            memory_version,
            memory_version,
            upserted,
            deleted,
            optimized,
            _since(started),
            None,
            table.version,
        )

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
        query = _check_query(query)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
            raise ValueError(f"k must be an integer between 1 and {_MAX_K}, got {k!r}.")
        if mode not in get_args(SearchMode):
            raise ValueError(f"mode must be 'hybrid', 'vector' or 'text', got {mode!r}.")
        if kind is not None and kind not in get_args(HitKind):
            raise ValueError(f"kind must be 'fact', 'chunk' or None, got {kind!r}.")
        where = lay.where(
            agent_id=None if agent_id is None else check_agent_id(agent_id),
            namespaces=_namespaces(namespace),
            kind=kind,
            include_shared=include_shared,
        )
        table, version = self._snapshot(as_of_version)
        depth = k if mode != "hybrid" else max(2 * k, 10)
        lists = []
        if mode != "text":
            lists.append(self._vector(table, self._embed_query(query), where, depth))
        if mode != "vector":
            lists.append(self._text(table, query, where, depth))
        best = lists[0].head(k) if len(lists) == 1 else _search.fuse(lists, k)
        return _search.hits(_search.materialize(table, best), version)

    def _vector(
        self, table: LanceTable, vector: np.ndarray | None, where: str | None, k: int
    ) -> pl.DataFrame:
        """Nearest rows by cosine similarity: ``_rowid`` and ``score`` (hits come later)."""
        if vector is None:  # nothing in the query the embedder could hash
            return pl.DataFrame(schema=_search.CANDIDATE)
        search = table.search(vector, vector_column_name="vector").distance_type("cosine")
        if where:
            search = search.where(where, prefilter=True)
        found = _search.to_frame(search.select(["_distance"]).with_row_id(True).limit(k).to_arrow())
        return found.select("_rowid", score=1.0 - pl.col("_distance").cast(pl.Float64))

    def _text(self, table: LanceTable, query: str, where: str | None, k: int) -> pl.DataFrame:
        """Best rows by BM25: ``_rowid`` and ``score`` only."""
        search = table.search(query, query_type="fts", fts_columns="text")
        if where:
            search = search.where(where, prefilter=True)
        found = _search.to_frame(search.select(["_score"]).with_row_id(True).limit(k).to_arrow())
        return found.select("_rowid", score=pl.col("_score").cast(pl.Float64))

    def _embed_query(self, query: str) -> np.ndarray | None:
        vector = self._embed([query])[0]
        return vector if np.any(vector) else None

    # -- versions and maintenance ---------------------------------------------------------

    def memory_version(self) -> int | None:
        """The memory version the latest index reflects; ``None`` before the first refresh."""
        table = self._table()
        return None if table is None else lay.read_state(table.schema).memory_version

    def versions(self) -> list[int]:
        """Memory versions the index holds snapshots of (``as_of_version`` values), oldest first."""
        table = self._table()
        return [] if table is None else sorted(_tagged(table))

    def info(self) -> IndexInfo:
        """Counts, embedder and versions of the latest index.

        Raises:
            IndexNotFoundError: Nothing was indexed yet.
        """
        table = self._require()
        state = lay.read_state(table.schema)
        return IndexInfo(
            embedder=state.embedder,
            memory_version=state.memory_version,
            versions=sorted(_tagged(table)),
            facts=table.count_rows(f"kind = {lay.quote(lay.FACT)}"),
            chunks=table.count_rows(f"kind = {lay.quote(lay.CHUNK)}"),
            index_version=table.version,
        )

    def optimize(self, *, retrain: bool = False) -> None:
        """Fold unindexed rows into the indexes and compact small files.

        Writes do this by themselves once ``OPTIMIZE_AFTER_ROWS`` rows are unindexed; call it
        from a maintenance job to do it sooner. Old untagged table versions are cleaned up
        after LanceDB's default retention (7 days); tagged snapshots are kept.

        Args:
            retrain: Also retrain the vector index's partitions on the current rows.
        """
        with self._writing():
            self._writable().optimize(retrain=retrain)

    def prune_versions(self, *, keep: int) -> list[int]:
        """Forget all but the newest ``keep`` memory-version snapshots.

        Tagged table versions are exempt from LanceDB's cleanup, so every refresh keeps its
        files forever until its tag goes: call this from a maintenance job. The files of the
        forgotten snapshots are removed by the next ``optimize`` once older than 7 days.

        Args:
            keep: How many snapshots to keep (the newest, including the current one).

        Returns:
            The memory versions that can no longer be searched with ``as_of_version``.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive integer, got {keep!r}.")
        with self._writing():
            table = self._writable()
            gone = sorted(_tagged(table))[:-keep]
            for version in gone:  # a tag may go; it never moves
                table.tags.delete(f"{lay.TAG_PREFIX}{version}")
        return gone

    def drop(self) -> None:
        """Delete the index table, every version and snapshot of it (to change embedder)."""
        with self._writing():
            if self._table() is not None:
                self._db.drop_table(self._name)
            self._latest = None
        with self._lock:
            self._snapshots.clear()

    # -- internals ------------------------------------------------------------------------

    def _table(self) -> LanceTable | None:
        if self._latest is None:
            try:
                self._latest = self._db.open_table(self._name)
            except ValueError:  # LanceDB: "Table '...' was not found"
                return None
        return self._latest

    def _require(self) -> LanceTable:
        table = self._table()
        if table is None:
            raise IndexNotFoundError(
                f"no retrieval index {self._name!r} in {self._uri}: run refresh_facts first."
            )
        return table

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the index's writer lock (write methods only; not reentrant)."""
        with _lock.exclusive(self._uri, self._name):
            yield

    def _writable(self) -> LanceTable:
        """The latest table (made with its indexes on first use), checked against the embedder.

        Call it holding the writer lock: what it returns is then the version the write builds on.
        """
        table = self._table()
        if table is not None:
            try:
                table.checkout_latest()  # another process may have written since it was opened
            except RuntimeError:  # ... or dropped it
                self._latest = None
                table = self._table()
        if table is None:
            schema = lay.arrow_schema(self._embedder.dim, self._embedder.name)
            table = self._db.create_table(self._name, schema=schema, exist_ok=True)
            indexed = {idx.columns[0] for idx in table.list_indices()}  # another process?
            for column, config in (
                ("id", BTree()),  # merge_insert and deletes by key
                ("agent_id", Bitmap()),  # the prefilter of nearly every search
                ("kind", Bitmap()),
                ("namespace", Bitmap()),
                ("text", FTS()),  # BM25; stems and drops English stop words
            ):
                if column not in indexed:
                    table.create_index(column, config=config)
            self._latest = table
        self._check_embedder(table)
        return table

    def _check_embedder(self, table: LanceTable, state: lay.State | None = None) -> None:
        state = state or lay.read_state(table.schema)
        mine = self._embedder
        if state.embedder != mine.name or state.dim != mine.dim:
            raise EmbedderMismatchError(
                f"the index {self._name!r} in {self._uri} was built by embedder "
                f"{state.embedder!r} ({state.dim} dimensions), but this MemoryIndex uses "
                f"{mine.name!r} ({mine.dim}); open it with {state.embedder!r}, or build a new "
                "index (another table name, or drop() this one)."
            )

    def _snapshot(self, as_of_version: int | None) -> tuple[LanceTable, int | None]:
        """A handle pinned to one table version, and the memory version it reflects.

        Even the latest index is searched through a pinned handle, so that a write landing
        mid-search (another process refreshing) cannot mix two versions in one answer.
        """
        latest = self._require()
        if as_of_version is None:
            table, state = self._pinned(latest.version)
            self._check_embedder(table, state)
            return table, state.memory_version
        check_version(as_of_version, "as_of_version")
        version = self._tag_version(latest, as_of_version)
        if version is None:
            raise IndexVersionNotFoundError(
                _no_snapshot(as_of_version, sorted(_tagged(latest)), self._name)
            )
        table, state = self._pinned(version)
        self._check_embedder(table, state)
        return table, as_of_version

    def _pinned(self, version: int) -> tuple[LanceTable, lay.State]:
        """A read-only handle checked out at ``version``, and its state (both kept: a
        version never changes)."""
        with self._lock:
            pinned = self._snapshots.get(version)
            if pinned is None:
                table = self._db.open_table(self._name)
                table.checkout(version)
                pinned = self._snapshots[version] = (table, lay.read_state(table.schema))
                while len(self._snapshots) > _SNAPSHOTS:
                    self._snapshots.popitem(last=False)
            else:
                self._snapshots.move_to_end(version)
            return pinned

    def _tag_version(self, table: LanceTable, memory_version: int) -> int | None:
        try:
            return table.tags.get_version(f"{lay.TAG_PREFIX}{memory_version}")
        except RuntimeError:  # LanceDB: "Ref not found error: tag ... does not exist"
            return None

    def _tag(self, table: LanceTable, memory_version: int) -> None:
        """Tag the table's version as the snapshot of ``memory_version``, unless one exists.

        Tags are never updated: a snapshot, once written, answers the same forever (until
        ``prune_versions`` deletes it).
        """
        if self._tag_version(table, memory_version) is not None:
            return
        try:
            table.tags.create(f"{lay.TAG_PREFIX}{memory_version}", table.version)
        except RuntimeError as exc:  # LanceDB: "Ref conflict error: tag ... already exists"
            if "already exists" not in str(exc):
                raise

    def _rows(self, table: LanceTable, kind: str) -> pl.DataFrame:
        """Every row of one kind, without vectors."""
        query = table.search().where(f"kind = {lay.quote(kind)}")
        return _search.to_frame(query.select(list(lay.ROW_COLUMNS)).limit(None).to_arrow())

    def _ids(self, table: LanceTable, kind: str) -> pl.Series:
        """The row key of every row of one kind."""
        query = table.search().where(f"kind = {lay.quote(kind)}").select(["id"]).limit(None)
        return _search.to_frame(query.to_arrow()).get_column("id")

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), _EMBED_BATCH):
            batch = list(texts[start : start + _EMBED_BATCH])
            vectors = np.asarray(self._embedder.embed(batch), dtype=np.float32)
            if vectors.shape != (len(batch), self._embedder.dim):
                raise RetrievalError(
                    f"embedder {self._embedder.name!r} returned shape {vectors.shape} for "
                    f"{len(batch)} texts; expected ({len(batch)}, {self._embedder.dim})."
                )
            parts.append(vectors)
        return np.concatenate(parts) if parts else np.zeros((0, self._embedder.dim), np.float32)

    def _write(
        self, table: LanceTable, rows: pl.DataFrame, delete_where: str | None
    ) -> tuple[int, int]:
        """Upsert ``rows`` (embedding them) and delete the rows ``delete_where`` names that are
        not among them, as ONE table version, so no reader sees half a change.

        Returns:
            Rows written and rows deleted.
        """
        if rows.is_empty() and delete_where is None:
            return 0, 0
        vectors = self._embed(rows.get_column("text").to_list())
        data = lay.to_arrow(rows, vectors, table.schema)
        merge = table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
        if delete_where is not None:
            merge = merge.when_not_matched_by_source_delete(delete_where)
        done = merge.execute(data)
        return done.num_inserted_rows + done.num_updated_rows, done.num_deleted_rows

    def _maintain(self, table: LanceTable) -> tuple[bool, dict[str, str]]:
        """Keep the indexes useful; returns whether it optimized and metadata to record."""
        rows = table.count_rows()
        names = {idx.columns[0]: idx.name for idx in table.list_indices()}
        trained = lay.read_state(table.schema).trained_rows
        if rows >= VECTOR_INDEX_MIN_ROWS and (
            "vector" not in names or (trained and rows >= RETRAIN_GROWTH * trained)
        ):
            table.create_index("vector", config=IvfFlat(distance_type="cosine"), replace=True)
            names = {idx.columns[0]: idx.name for idx in table.list_indices()}
            meta = {lay.TRAINED_ROWS_KEY: str(rows)}
        else:
            meta = {}
        unindexed = 0
        for column in ("text", "vector"):
            stats = table.index_stats(names[column]) if column in names else None
            if stats is not None:
                unindexed = max(unindexed, stats.num_unindexed_rows)
        if unindexed >= OPTIMIZE_AFTER_ROWS:
            table.optimize()
            return True, meta
        return False, meta


def _full_reason(full: bool, state: lay.State, target: int, facts_id: str) -> str | None:
    if full:
        return "a full refresh was asked for"
    if state.memory_version is None:
        return "first build"
    if state.facts_table_id != facts_id:
        return "the memory table was recreated (its Delta table id changed)"
    if target < state.memory_version:
        return f"memory version {target} is older than the indexed {state.memory_version}"
    return None


def _check_query(query: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty string, got {query!r}.")
    return query


def _namespaces(namespace: str | Sequence[str] | None) -> list[str] | None:
    if namespace is None:
        return None
    names = [namespace] if isinstance(namespace, str) else list(namespace)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(
            f"namespace must be a non-empty string or list of them, got {namespace!r}."
        )
    return names


def _tagged(table: LanceTable) -> set[int]:
    prefix = lay.TAG_PREFIX
    return {
        int(name[len(prefix) :])
        for name in table.tags.list()
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    }


def _no_snapshot(version: int, versions: list[int], table: str) -> str:
    if not versions:
        return f"the index {table!r} holds no snapshot yet: run refresh_facts first."
    older = [v for v in versions if v < version]
    newer = [v for v in versions if v > version]
    if not newer:
        where = f"the newest it holds is {versions[-1]}; refresh it to reach {version}"
    else:
        near = ", ".join(str(v) for v in (older[-1:] + newer[:1]))
        where = f"the nearest it holds are {near}"
    shown = ", ".join(str(v) for v in versions[-20:])
    more = f" (the last 20 of {len(versions)})" if len(versions) > 20 else ""
    return (
        f"the index {table!r} holds no snapshot of memory version {version}: snapshots exist "
        f"only for versions it was refreshed at; {where}. Versions held{more}: {shown}."
    )


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)
