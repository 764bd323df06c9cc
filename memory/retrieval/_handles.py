"""Handles on the index table: the latest, made on first write, and read-only ones pinned to
a version (a search reads one version however many writes land meanwhile)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from lancedb.db import DBConnection
from lancedb.table import LanceTable

from memory.embedders import Embedder
from memory.model import check_version
from memory.retrieval import _indexes, _snapshots
from memory.retrieval import _layout as lay
from memory.retrieval.errors import (
    EmbedderMismatchError,
    IndexNotFoundError,
    IndexVersionNotFoundError,
)

_PINNED = 8  # time-travel handles kept open


class Handles:
    """The LanceDB handles of one index table, used with one embedder."""

    def __init__(self, db: DBConnection, uri: str, name: str, embedder: Embedder) -> None:
        self._db = db
        self._uri = uri
        self._name = name
        self._embedder = embedder
        self._latest: LanceTable | None = None
        self._pinned: OrderedDict[int, tuple[LanceTable, lay.State]] = OrderedDict()
        self._lock = threading.Lock()  # searches may come from many threads

    def latest(self) -> LanceTable | None:
        """The latest table; ``None`` when there is no index yet."""
        if self._latest is None:
            try:
                self._latest = self._db.open_table(self._name)
            except ValueError:  # LanceDB: "Table '...' was not found"
                return None
        return self._latest

    def require(self) -> LanceTable:
        """The latest table, or a clear error when nothing was indexed yet."""
        table = self.latest()
        if table is None:
            raise IndexNotFoundError(
                f"no retrieval index {self._name!r} in {self._uri}: run refresh_facts first."
            )
        return table

    def writable(self) -> LanceTable:
        """The latest table (made with its indexes on first use), checked against the embedder.

        Call it holding the writer lock: what it returns is then the version the write builds on.
        """
        table = self.latest()
        if table is not None:
            try:
                table.checkout_latest()  # another process may have written since it was opened
            except RuntimeError:  # ... or dropped it
                self._latest = None
                table = self.latest()
        if table is None:
            schema = lay.arrow_schema(self._embedder.dim, self._embedder.name)
            table = self._db.create_table(self._name, schema=schema, exist_ok=True)
            _indexes.create_missing(table)
            self._latest = table
        self.check_embedder(lay.read_state(table.schema))
        return table

    def snapshot(self, as_of_version: int | None) -> tuple[LanceTable, int | None]:
        """A handle pinned to the latest version, or to the snapshot of ``as_of_version``,
        and the memory version it reflects.

        Even the latest index is searched through a pinned handle, so that a write landing
        mid-search (another process refreshing) cannot mix two versions in one answer.
        """
        latest = self.require()
        if as_of_version is None:
            table, state = self._pinned_at(latest.version)
            self.check_embedder(state)
            return table, state.memory_version
        check_version(as_of_version, "as_of_version")
        version = _snapshots.table_version(latest, as_of_version)
        if version is None:
            held = _snapshots.memory_versions(latest)
            raise IndexVersionNotFoundError(_snapshots.missing(as_of_version, held, self._name))
        table, state = self._pinned_at(version)
        self.check_embedder(state)
        return table, as_of_version

    def check_embedder(self, state: lay.State) -> None:
        """Refuse a table version whose vectors another embedder made."""
        mine = self._embedder
        if state.embedder != mine.name or state.dim != mine.dim:
            raise EmbedderMismatchError(
                f"the index {self._name!r} in {self._uri} was built by embedder "
                f"{state.embedder!r} ({state.dim} dimensions), but this MemoryIndex uses "
                f"{mine.name!r} ({mine.dim}); open it with {state.embedder!r}, or build a new "
                "index (another table name, or drop() this one)."
            )

    def drop(self) -> None:
        """Delete the table, every version and snapshot of it, and forget every handle."""
        if self.latest() is not None:
            self._db.drop_table(self._name)
        self._latest = None
        with self._lock:
            self._pinned.clear()

    def _pinned_at(self, version: int) -> tuple[LanceTable, lay.State]:
        """A read-only handle checked out at ``version``, and its state (both kept: a
        version never changes)."""
        with self._lock:
            pinned = self._pinned.get(version)
            if pinned is None:
                table = self._db.open_table(self._name)
                table.checkout(version)
                pinned = self._pinned[version] = (table, lay.read_state(table.schema))
                while len(self._pinned) > _PINNED:
                    self._pinned.popitem(last=False)
            else:
                self._pinned.move_to_end(version)
            return pinned
