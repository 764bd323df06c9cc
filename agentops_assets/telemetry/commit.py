"""Committing parsed landing files: dedup by event_id, then events, quarantine, file records.

A file is recorded in ``ingested_files`` once all its rows are committed (a large file comes in
chunks, over several batches). A run killed before that leaves rows of a file it never
recorded; ``discard_unrecorded`` deletes them before the file is read again.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime
from typing import Final

import polars as pl
from deltalake import CommitProperties, DeltaTable

from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.files import FileResult, ParsedFile
from agentops_assets.telemetry.schema import (
    AGENT_EVENTS,
    INGESTED_FILES,
    INGESTED_FILES_SCHEMA,
    QUARANTINE,
)

_EVENTS_WRITER: Final = lake.writer_properties(
    unique=("event_id", "trace_id", "parent_id"),
    free_text=("input_context", "reasoning_summary", "result", "attributes"),
)


class BatchWriter:
    """Buffers parsed files and commits each batch: events, then quarantine, then file records.

    Commits run on one background thread, in order, one batch at a time, so parsing goes on
    while a batch is written and at most two batches are held in memory. The chunks of a large
    file add up to one file record, written with the batch that holds its last chunk.
    """

    def __init__(self, paths: Paths, ingested_at: datetime) -> None:
        self.paths = paths
        self.ingested_at = ingested_at
        self.batch: list[ParsedFile] = []
        self.buffered = 0
        self.results: list[FileResult] = []
        self._open: dict[str, FileResult] = {}  # files whose last chunk is still to come
        self._known_ids = _KnownIds(paths.table_uri(AGENT_EVENTS))
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="agentops-commit")
        self._commit: Future[None] | None = None

    def add(self, parsed: ParsedFile) -> None:
        self.batch.append(parsed)
        self.buffered += parsed.events.height

    def flush(self) -> None:
        """Hand the batch to the committer once the previous batch is committed."""
        self._wait()
        if self.batch:
            self._commit = self._committer.submit(self._write, self.batch)
        self.batch, self.buffered = [], 0

    def close(self) -> None:
        self.flush()
        self._wait()
        self._committer.shutdown()

    def _wait(self) -> None:
        if self._commit is not None:
            self._commit.result()  # re-raises a failed commit here
            self._commit = None

    def _write(self, batch: list[ParsedFile]) -> None:
        metadata = {"agentops.operation": "ingest", "agentops.files": str(len(batch))}
        new = self._known_ids.new_events(pl.concat(parsed.events for parsed in batch))
        lake.append(
            self.paths.table_uri(AGENT_EVENTS),
            new,
            partition_by=["event_date"],
            metadata=metadata,
            writer=_EVENTS_WRITER,
        )
        self._known_ids.remember(new)
        lake.append(
            self.paths.table_uri(QUARANTINE),
            pl.concat(parsed.quarantine for parsed in batch),
            metadata=metadata,
        )
        new_per_file = dict(new.group_by("source_file").len().iter_rows())
        finished = []
        for parsed in batch:
            result = self._open.pop(parsed.result.path, None)
            if result is None:
                result = parsed.result
            else:
                result.add(parsed.result)
            result.new_rows += new_per_file.pop(result.path, 0)
            if parsed.final:
                result.duplicate_rows = result.good_rows - result.new_rows
                finished.append(result)
            else:
                self._open[result.path] = result
        if finished:
            lake.append(
                self.paths.table_uri(INGESTED_FILES),
                _files_frame(finished, self.ingested_at),
                metadata=metadata,
            )
        self.results.extend(finished)


class _KnownIds:
    """Event ids already stored, per ``event_date`` partition, loaded as batches need them.

    Uniqueness is enforced within an event's date partition: a re-sent event carries its
    original timestamp. The ``event_ids_unique`` asset check watches the whole table.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.by_date: dict[date, pl.Series] = {}

    def new_events(self, events: pl.DataFrame) -> pl.DataFrame:
        """``events`` less those stored before or repeated in the batch (first one kept)."""
        if events.get_column("event_id").n_unique() < events.height:
            events = events.unique("event_id", keep="first", maintain_order=True)
        dates = events.get_column("event_date").unique().to_list()
        self._load([d for d in dates if d not in self.by_date])
        known = [self.by_date[d] for d in dates if not self.by_date[d].is_empty()]
        if not known:
            return events
        return events.filter(pl.col("event_id").is_in(pl.concat(known)).not_())

    def remember(self, written: pl.DataFrame) -> None:
        for (day,), ids in (
            written.select("event_date", "event_id")
            .partition_by("event_date", as_dict=True)
            .items()
        ):
            self.by_date[day] = pl.concat([self.by_date[day], ids.get_column("event_id")])

    def _load(self, dates: list[date]) -> None:
        empty = pl.Series("event_id", [], dtype=pl.String)
        self.by_date.update(dict.fromkeys(dates, empty))
        table = lake.scan(self.uri) if dates else None
        if table is None:
            return
        stored = (
            table.filter(pl.col("event_date").is_in(dates))
            .select("event_date", "event_id")
            .collect()
        )
        for (day,), ids in stored.partition_by("event_date", as_dict=True).items():
            self.by_date[day] = ids.get_column("event_id")


def discard_unrecorded(paths: Paths, names: Iterable[str]) -> None:
    """Delete the rows that interrupted runs stored for these files without recording them.

    The files are about to be read again; without their earlier rows the new read counts every
    row once, as new or duplicate exactly as a clean run would, and stores no row twice. Rows
    are an interrupted run's when no file record covers them: events of a path stored after
    its last record, quarantine rows of a (path, file hash) never recorded.
    """
    names = list(names)
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if not names or events is None:
        return
    last: dict[str, datetime] = {}
    recorded: set[tuple[str, str]] = set()
    files = lake.scan(paths.table_uri(INGESTED_FILES))
    if files is not None:
        seen = files.filter(pl.col("path").is_in(names)).select(
            "path", "content_hash", "ingested_at"
        )
        seen = seen.collect()
        last = dict(seen.group_by("path").agg(pl.col("ingested_at").max()).iter_rows())
        recorded = set(seen.select("path", "content_hash").iter_rows())
    stored = (
        events.filter(pl.col("source_file").is_in(names))
        .group_by("source_file")
        .agg(pl.col("ingested_at").max())
        .collect()
    )
    _delete(
        paths.table_uri(AGENT_EVENTS),
        [
            f"source_file = {_sql(path)}"
            if path not in last
            else f"(source_file = {_sql(path)} AND ingested_at > {_sql(_iso(last[path]))})"
            for path, newest in stored.iter_rows()
            if path not in last or newest > last[path]
        ],
    )
    quarantine = lake.scan(paths.table_uri(QUARANTINE))
    if quarantine is None:
        return
    stored = (
        quarantine.filter(pl.col("source_file").is_in(names))
        .select("source_file", "file_hash")
        .unique()
        .collect()
    )
    _delete(
        paths.table_uri(QUARANTINE),
        [
            f"(source_file = {_sql(path)} AND file_hash = {_sql(file_hash)})"
            for path, file_hash in stored.iter_rows()
            if (path, file_hash) not in recorded
        ],
    )


def _delete(uri: str, clauses: list[str]) -> None:
    if clauses:
        DeltaTable(uri).delete(
            " OR ".join(clauses),
            commit_properties=CommitProperties(
                custom_metadata={"agentops.operation": "ingest_discard_unrecorded"}
            ),
        )


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _files_frame(results: Iterable[FileResult], ingested_at: datetime) -> pl.DataFrame:
    rows = [
        {
            "path": r.path,
            "content_hash": r.content_hash,
            "size_bytes": r.size_bytes,
            "modified_at": r.modified_at,
            "source_format": r.source_format,
            "records": r.records,
            "good_rows": r.good_rows,
            "new_rows": r.new_rows,
            "duplicate_rows": r.duplicate_rows,
            "quarantined_rows": r.quarantined_rows,
            "ingested_at": ingested_at,
            "duration_ms": r.duration_ms,
        }
        for r in results
    ]
    return pl.DataFrame(rows, schema=INGESTED_FILES_SCHEMA)
