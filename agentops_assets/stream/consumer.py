"""Drain the telemetry stream into ``agent_events`` and its quarantine, exactly once.

Micro-batches: a batch starts with the first message read and gathers messages for
``batch_seconds`` (or until ``max_messages``). Its records are parsed with ingestion's readers
and checks (:mod:`.messages`), then committed under the lake writer lock of ``agent_events``:

1. ``agent_events``: the batch's new events (event ids already stored for their date, or
   repeated in the batch, are left out, as ingestion does), with a Delta transaction
   ``(app_id, version)``, ``version`` = :func:`~.base.txn_version` of the batch's last id;
2. ``agent_events_quarantine``: its quarantine rows, with the same transaction;
3. XACK of every message of the batch.

The invariant: a table whose stored version for ``app_id`` is V holds the rows of every
message with an id up to V (messages are committed in id order by the single consumer the
lease allows). After a crash anywhere, the pending messages come back first: those at or
below both tables' versions are acknowledged without writing; the interrupted batch (ids up
to the higher version) is parsed again and committed on its own to the table that lacks it;
then the rest as usual. So a kill between the two commits stores the quarantine rows once,
and a kill before XACK stores nothing twice. Both commits happen even when a table gets no
rows, so the versions advance together. Records are validated against the publish time of
their batch's last message, not the clock, so a batch read again gives the same rows.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final

import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction

from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.stream.base import Message, StreamLag, TelemetryStream, txn_version
from agentops_assets.stream.messages import MESSAGE_COLUMN, parse_messages
from agentops_assets.telemetry.schema import AGENT_EVENTS, QUARANTINE

__all__ = ["CRASH_ENV", "BatchResult", "ConsumeReport", "StreamConsumer", "app_id_for"]

# Test hook: the consumer SIGKILLs itself at this boundary ("after_events", "after_quarantine").
CRASH_ENV: Final = "AGENTOPS_STREAM_CRASH_AT"
_EVENTS_WRITER: Final = lake.writer_properties(
    unique=("event_id", "trace_id", "parent_id"),
    free_text=("input_context", "reasoning_summary", "result", "attributes"),
)


def app_id_for(stream: str, group: str) -> str:
    """The Delta transaction app id of a stream's consumer group."""
    return f"agentops.stream:{stream}:{group}"


@dataclass(frozen=True)
class BatchResult:
    """What one micro-batch did."""

    messages: int
    skipped: int  # messages already committed before a crash: acknowledged, not written
    records: int
    new_events: int
    duplicate_events: int
    quarantined: int
    first_id: str
    last_id: str
    seconds: float  # from the first read to the acknowledgement
    oldest_ms: int  # publish time of the batch's oldest message


@dataclass
class ConsumeReport:
    """Totals of a ``drain``."""

    batches: int = 0
    messages: int = 0
    skipped: int = 0
    records: int = 0
    new_events: int = 0
    duplicate_events: int = 0
    quarantined: int = 0
    results: list[BatchResult] = field(default_factory=list)

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.messages += result.messages
        self.skipped += result.skipped
        self.records += result.records
        self.new_events += result.new_events
        self.duplicate_events += result.duplicate_events
        self.quarantined += result.quarantined
        self.results.append(result)


class StreamConsumer:
    """Commits micro-batches of a stream into the lake (one per stream group at a time).

    Args:
        paths: The storage layout; tables under ``paths.lake_uri``.
        stream: The stream, opened for this consumer's group.

    Example:
        >>> StreamConsumer(paths, stream).drain(batch_seconds=2, once=True)
    """

    def __init__(self, paths: Paths, stream: TelemetryStream) -> None:
        self.paths = paths
        self.stream = stream
        self.app_id = app_id_for(stream.name, stream.group)
        self._events = _Table(paths.table_uri(AGENT_EVENTS))
        self._quarantine = _Table(paths.table_uri(QUARANTINE))
        self._ids = _EventIds()

    def committed(self) -> tuple[int, int]:
        """The transaction versions ``agent_events`` and the quarantine hold (0: none)."""
        return self._events.version_of(self.app_id), self._quarantine.version_of(self.app_id)

    def drain(
        self,
        *,
        batch_seconds: float = 2.0,
        max_messages: int = 1000,
        once: bool = False,
        idle_seconds: float = 1.0,
        stop: threading.Event | None = None,
        report: Callable[[BatchResult], None] | None = None,
    ) -> ConsumeReport:
        """Commit batches until ``stop`` is set, or (``once``) until the stream is drained.

        Args:
            batch_seconds: How long a batch gathers messages after its first one.
            max_messages: Most messages in one batch.
            once: Stop when a read finds nothing new instead of waiting for more.
            idle_seconds: How long one read waits when nothing comes (how soon ``stop`` acts).
            stop: Set it (e.g. from a signal handler) to stop after the current batch.
            report: Called with each batch's result.
        """
        if batch_seconds < 0 or max_messages < 1:
            raise ValueError("batch_seconds must be at least 0 and max_messages at least 1.")
        stop = stop or threading.Event()
        totals = ConsumeReport()
        while not stop.is_set():
            started = time.monotonic()
            batch = self._gather(batch_seconds, max_messages, once, idle_seconds, stop)
            if not batch:
                if once:
                    break
                continue
            result = self.commit(batch, started=started)
            totals.add(result)
            if report is not None:
                report(result)
        return totals

    def commit(self, batch: list[Message], *, started: float | None = None) -> BatchResult:
        """Commit one batch (in id order) to both tables, then acknowledge it.

        Messages a crash left committed to one table only (the interrupted batch, ids up to
        the higher table version) are committed on their own first, judged as before: a
        batch's records are validated against the publish time of its last message, so the
        same messages give the same rows whenever they are read.
        """
        started = time.monotonic() if started is None else started
        in_events, in_quarantine = self.committed()
        low, high = sorted((in_events, in_quarantine))
        todo = [m for m in batch if txn_version(m.id) > low]
        interrupted = [m for m in todo if txn_version(m.id) <= high]
        counts = [0, 0, 0, 0]  # records, new events, duplicates, quarantined
        for part in (interrupted, todo[len(interrupted) :]):
            if part:
                for n, value in enumerate(self._write(part, *self.committed())):
                    counts[n] += value
        self.stream.ack([m.id for m in batch])
        return BatchResult(
            messages=len(batch),
            skipped=len(batch) - len(todo),
            records=counts[0],
            new_events=counts[1],
            duplicate_events=counts[2],
            quarantined=counts[3],
            first_id=batch[0].id,
            last_id=batch[-1].id,
            seconds=time.monotonic() - started,
            oldest_ms=batch[0].published_ms,
        )

    def _write(
        self, part: list[Message], in_events: int, in_quarantine: int
    ) -> tuple[int, int, int, int]:
        """Both commits of ``part``, each table getting the messages above its version."""
        parsed = parse_messages(
            part,
            stream=self.stream.name,
            ingested_at=datetime.now(UTC),
            now=datetime.fromtimestamp(part[-1].published_ms / 1000, UTC),
        )
        versions = [txn_version(m.id) for m in part]
        txn = Transaction(self.app_id, versions[-1])
        new = duplicates = quarantined = 0
        with lake.writer_lock(self.paths, AGENT_EVENTS):
            if versions[-1] > in_events:
                events = _above(parsed.events, versions, in_events)
                kept = self._ids.new_events(events, self._events)
                self._events.append(kept, txn, partition_by=["event_date"], batch=part)
                self._ids.remember(kept, self._events)
                new, duplicates = kept.height, events.height - kept.height
            _crash_point("after_events")
            if versions[-1] > in_quarantine:
                quarantine = _above(parsed.quarantine, versions, in_quarantine)
                self._quarantine.append(quarantine, txn, batch=part)
                quarantined = quarantine.height
            _crash_point("after_quarantine")
        return parsed.records, new, duplicates, quarantined

    def lag(self) -> StreamLag:
        return self.stream.lag()

    def _gather(
        self,
        batch_seconds: float,
        max_messages: int,
        once: bool,
        idle_seconds: float,
        stop: threading.Event,
    ) -> list[Message]:
        batch = self.stream.read(count=max_messages, block_seconds=0 if once else idle_seconds)
        deadline = time.monotonic() + batch_seconds
        while batch and len(batch) < max_messages and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self.stream.read(
                count=max_messages - len(batch), block_seconds=0 if once else left
            )
            if not more and once:
                break
            batch += more
        return batch


class _Table:
    """A Delta table the consumer appends to, with its last known state kept open."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.table: DeltaTable | None = None

    def refresh(self) -> DeltaTable | None:
        if self.table is None:
            if not lake.table_exists(self.uri):
                return None
            self.table = DeltaTable(self.uri)
        else:
            self.table.update_incremental()
        return self.table

    def version(self) -> int | None:
        table = self.refresh()
        return None if table is None else table.version()

    def version_of(self, app_id: str) -> int:
        table = self.refresh()
        return (table.transaction_version(app_id) if table is not None else None) or 0

    def append(
        self,
        frame: pl.DataFrame,
        txn: Transaction,
        *,
        batch: list[Message],
        partition_by: list[str] | None = None,
    ) -> None:
        """One commit carrying ``txn``, even with no rows (so the version advances)."""
        metadata = {
            "agentops.operation": "stream_ingest",
            "agentops.stream_ids": f"{batch[0].id}..{batch[-1].id}",
        }
        frame.drop(MESSAGE_COLUMN).write_delta(
            self.uri,
            mode="append",
            delta_write_options={
                "partition_by": partition_by,
                "commit_properties": CommitProperties(
                    custom_metadata=metadata, app_transactions=[txn]
                ),
                "writer_properties": _EVENTS_WRITER if partition_by else lake.writer_properties(),
            },
        )


class _EventIds:
    """Event ids stored per ``event_date``, loaded as batches need them.

    Kept across batches while nobody else writes ``agent_events``; a commit by another writer
    (the landing ingestion) since the last look empties the cache.
    """

    def __init__(self) -> None:
        self.by_date: dict[date, pl.Series] = {}
        self.seen_version: int | None = None

    def new_events(self, events: pl.DataFrame, table: _Table) -> pl.DataFrame:
        """``events`` less those stored before or repeated in the batch (first one kept)."""
        if table.version() != self.seen_version:
            self.by_date.clear()
        if events.get_column("event_id").n_unique() < events.height:
            events = events.unique("event_id", keep="first", maintain_order=True)
        dates = events.get_column("event_date").unique().to_list()
        self._load(table, [d for d in dates if d not in self.by_date])
        known = [self.by_date[d] for d in dates if not self.by_date[d].is_empty()]
        if not known:
            return events
        return events.filter(pl.col("event_id").is_in(pl.concat(known)).not_())

    def remember(self, written: pl.DataFrame, table: _Table) -> None:
        for (day,), ids in written.partition_by("event_date", as_dict=True).items():
            self.by_date[day] = pl.concat([self.by_date[day], ids.get_column("event_id")])
        self.seen_version = table.version()

    def _load(self, table: _Table, dates: list[date]) -> None:
        empty = pl.Series("event_id", [], dtype=pl.String)
        self.by_date.update(dict.fromkeys(dates, empty))
        frame = lake.scan(table.uri) if dates else None
        if frame is None:
            return
        stored = (
            frame.filter(pl.col("event_date").is_in(dates))
            .select("event_date", "event_id")
            .collect()
        )
        for (day,), ids in stored.partition_by("event_date", as_dict=True).items():
            self.by_date[day] = ids.get_column("event_id")


def _above(frame: pl.DataFrame, versions: list[int], committed: int) -> pl.DataFrame:
    """Rows of messages whose version is above what the table already holds."""
    keep = [n for n, v in enumerate(versions) if v > committed]
    if len(keep) == len(versions):
        return frame
    return frame.filter(pl.col(MESSAGE_COLUMN).is_in(keep))


def _crash_point(boundary: str) -> None:
    """Kill this process here when the test hook names this boundary."""
    if os.environ.get(CRASH_ENV) == boundary:
        os.kill(os.getpid(), signal.SIGKILL)
