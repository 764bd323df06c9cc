"""Ingestion: landing files -> ``agent_events``, ``agent_events_quarantine``, ``ingested_files``.

Rules (TELEMETRY.md): each landing file is ingested once; an ``event_id`` is stored once even
when re-sent in another file; every record read is either stored or quarantined with a
reason; secrets are redacted before the write; landing files are never modified.

Crash safety: each table is written in whole Delta commits, events first, then quarantine,
then the file record. A run killed in between leaves the file unrecorded, so the next run
reads it again; events are skipped by ``event_id`` and quarantine rows by (file, record), so
it ends with exactly the rows a clean run would have written.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import polars as pl
from agentops_assets.telemetry.otlp import read_otlp

from agentops_assets import lake
from agentops_assets.config import Paths
from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.landing import (
    FileContent,
    LandingFile,
    discover,
    pending_files,
    read_content,
)
from agentops_assets.telemetry.parsed import ParsedRecords, Reject
from agentops_assets.telemetry.redact import redact_frame
from agentops_assets.telemetry.schema import (
    AGENT_EVENTS,
    EVENT_SCHEMA,
    INGESTED_FILES,
    INGESTED_FILES_SCHEMA,
    QUARANTINE,
    QUARANTINE_SCHEMA,
    RAW_SCHEMA,
    TEXT_FIELDS,
)
from agentops_assets.telemetry.validate import validate

RAW_TEXT_LIMIT: Final = 65_536  # characters of a quarantined record kept in the table
DEFAULT_BATCH_ROWS: Final = 400_000  # events buffered before a commit; bounds memory
_READERS: Final = {"jsonl": read_jsonl, "otlp_json": read_otlp}
_FILE_PROBLEMS: Final = {
    "binary_file": "The file is binary, not text telemetry.",
    "invalid_gzip": "The file is not a readable gzip stream.",
    "truncated_file": "The gzip stream ends early; the rest of the file could not be read.",
}

Progress = Callable[[int, int, int], None]  # files done, files to do, events read so far


@dataclass
class FileResult:
    """What ingesting one landing file did; one row of ``ingested_files``."""

    path: str
    content_hash: str
    size_bytes: int
    modified_at: datetime
    source_format: str
    records: int = 0
    good_rows: int = 0
    new_rows: int = 0
    duplicate_rows: int = 0
    quarantined_rows: int = 0
    duration_ms: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class IngestReport:
    """The outcome of one ingestion run."""

    files: list[FileResult]
    skipped_files: int
    seconds: float

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def new_rows(self) -> int:
        return sum(f.new_rows for f in self.files)

    @property
    def duplicate_rows(self) -> int:
        return sum(f.duplicate_rows for f in self.files)

    @property
    def quarantined_rows(self) -> int:
        return sum(f.quarantined_rows for f in self.files)

    @property
    def reasons(self) -> Counter[str]:
        return sum((f.reasons for f in self.files), Counter())


def ingest_landing(
    paths: Paths,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Ingest every landing file not ingested before.

    Writers of the telemetry tables on this machine take turns (a file lock), so two runs at
    once neither duplicate nor lose anything.

    Args:
        paths: The storage layout.
        batch_rows: Events buffered before they are committed; bounds peak memory.
        progress: Called after each file with (files done, files to do, events read).
        now: The ingestion time (tests pin it); future timestamps are judged against it.
    """
    started = time.perf_counter()
    with lake.writer_lock(paths, AGENT_EVENTS):
        ingested_at = now or datetime.now(UTC)
        todo, skipped = _pending(paths, discover(paths.landing))
        writer = _Writer(paths, ingested_at)
        read = 0
        parsed_files = _read_ahead(todo, lambda file: _read_file(file, ingested_at))
        for done, parsed in enumerate(parsed_files, start=1):
            writer.add(parsed)
            read += parsed.result.records
            if writer.buffered >= batch_rows:
                writer.flush()
            if progress:
                progress(done, len(todo), read)
        writer.flush()
    return IngestReport(writer.results, skipped, time.perf_counter() - started)


def _read_ahead(
    files: list[LandingFile], read: Callable[[LandingFile], _ParsedFile], ahead: int = 2
) -> Iterator[_ParsedFile]:
    """Parse files in threads, in order, at most ``ahead`` files beyond the one being written.

    Reading, hashing, polars and Delta release the GIL, so two files parse while a third is
    committed; the window bounds memory.
    """
    with ThreadPoolExecutor(max_workers=ahead) as pool:
        window: deque[Future[_ParsedFile]] = deque()
        for file in files:
            window.append(pool.submit(read, file))
            if len(window) > ahead:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def ingested_stamps(paths: Paths) -> set[tuple[str, int, datetime]]:
    """(path, size, mtime) of every landing file recorded in ``ingested_files``."""
    table = lake.scan(paths.table_uri(INGESTED_FILES))
    if table is None:
        return set()
    return set(table.select("path", "size_bytes", "modified_at").collect().iter_rows())


def _pending(paths: Paths, files: list[LandingFile]) -> tuple[list[LandingFile], int]:
    """Files not ingested yet: unseen (path, size, mtime), or seen with other content."""
    candidates = pending_files(files, ingested_stamps(paths))
    table = lake.scan(paths.table_uri(INGESTED_FILES))
    if table is None or not candidates:
        return candidates, len(files) - len(candidates)
    hashes = set(table.select("path", "content_hash").collect().iter_rows())
    todo = [
        file
        for file in candidates
        # A touched file with unchanged content is not new.
        if (file.name, hashlib.sha256(file.path.read_bytes()).hexdigest()) not in hashes
    ]
    return todo, len(files) - len(todo)


@dataclass(frozen=True)
class _ParsedFile:
    result: FileResult
    events: pl.DataFrame
    quarantine: pl.DataFrame


def _read_file(file: LandingFile, ingested_at: datetime) -> _ParsedFile:
    """Read, validate and redact one landing file; touches no table (runs in a thread)."""
    started = time.perf_counter()
    content = read_content(file)
    result = FileResult(
        path=file.name,
        content_hash=hashlib.sha256(content.stored).hexdigest(),
        size_bytes=file.size,
        modified_at=file.modified_at,
        source_format=file.source_format,
    )
    parsed = _parse(file, content)
    checked = validate(parsed.records, now=ingested_at)
    failures = [
        Reject(index, reason, detail, parsed.raw(index), -1)
        for index, reason, detail in checked.failures.iter_rows()
    ]
    rejects = parsed.rejects + failures
    events = checked.rows.drop("_index").with_columns(
        event_date=pl.col("ts").dt.date(),
        source_format=pl.lit(file.source_format),
        source_file=pl.lit(file.name),
        ingested_at=pl.lit(ingested_at, dtype=EVENT_SCHEMA["ingested_at"]),
    )
    result.records = parsed.records_read
    result.good_rows = events.height
    result.quarantined_rows = len(rejects)
    result.reasons.update(r.reason for r in rejects)
    result.duration_ms = (time.perf_counter() - started) * 1000
    quarantine = _quarantine_frame(file, result, rejects, ingested_at)
    return _ParsedFile(
        result,
        redact_frame(events.select(EVENT_SCHEMA.names()), TEXT_FIELDS),
        redact_frame(quarantine, ["raw_text", "detail"]),
    )


def _quarantine_frame(
    file: LandingFile, result: FileResult, rejects: list[Reject], ingested_at: datetime
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source_file": [file.name] * len(rejects),
            "record_index": [r.index for r in rejects],
            "source_format": [file.source_format] * len(rejects),
            "reason": [r.reason for r in rejects],
            "detail": [r.detail for r in rejects],
            "raw_text": [r.raw[:RAW_TEXT_LIMIT] for r in rejects],
            "raw_bytes": [
                r.raw_bytes if r.raw_bytes >= 0 else len(r.raw.encode()) for r in rejects
            ],
            "file_hash": [result.content_hash] * len(rejects),
            "ingested_at": [ingested_at] * len(rejects),
        },
        schema=QUARANTINE_SCHEMA,
    )


class _Writer:
    """Buffers parsed files and commits them: events, then quarantine, then file records."""

    def __init__(self, paths: Paths, ingested_at: datetime) -> None:
        self.paths = paths
        self.ingested_at = ingested_at
        self.events: list[pl.DataFrame] = []
        self.quarantine: list[pl.DataFrame] = []
        self.pending: list[FileResult] = []
        self.results: list[FileResult] = []
        self.buffered = 0
        self._known_ids = _KnownIds(paths.table_uri(AGENT_EVENTS))

    def add(self, parsed: _ParsedFile) -> None:
        self.events.append(parsed.events)
        self.quarantine.append(parsed.quarantine)
        self.pending.append(parsed.result)
        self.buffered += parsed.events.height

    def flush(self) -> None:
        if not self.pending:
            return
        events = pl.concat(self.events) if self.events else EVENT_SCHEMA.to_frame()
        new = self._known_ids.new_events(events)
        metadata = {"agentops.operation": "ingest", "agentops.files": str(len(self.pending))}
        lake.append(
            self.paths.table_uri(AGENT_EVENTS), new, partition_by=["event_date"], metadata=metadata
        )
        self._known_ids.remember(new)
        quarantine = _unseen_quarantine(self.paths, pl.concat(self.quarantine))
        lake.append(self.paths.table_uri(QUARANTINE), quarantine, metadata=metadata)
        new_per_file = dict(new.group_by("source_file").len().iter_rows())
        for result in self.pending:
            result.new_rows = new_per_file.get(result.path, 0)
            result.duplicate_rows = result.good_rows - result.new_rows
        lake.append(
            self.paths.table_uri(INGESTED_FILES),
            _files_frame(self.pending, self.ingested_at),
            metadata=metadata,
        )
        self.results.extend(self.pending)
        self.events, self.quarantine, self.pending, self.buffered = [], [], [], 0


def _parse(file: LandingFile, content: FileContent) -> ParsedRecords:
    problem = content.problem
    if problem in ("binary_file", "invalid_gzip") or (
        problem == "truncated_file" and file.source_format != "jsonl"
    ):
        raw = content.data[:RAW_TEXT_LIMIT].decode("utf-8", errors="backslashreplace")
        reject = Reject(0, problem, _FILE_PROBLEMS[problem], raw, len(content.data))
        return ParsedRecords(RAW_SCHEMA.to_frame(), [reject], records_read=1)
    data = content.data
    tail = b""
    if problem == "truncated_file":
        cut = data.rfind(b"\n") + 1
        data, tail = data[:cut], data[cut:]
    parsed = _READERS[file.source_format](data, source_file=file.name)
    if problem == "truncated_file":
        index = data.count(b"\n") + 1
        text = tail.decode("utf-8", errors="replace")
        parsed.rejects.append(Reject(index, problem, _FILE_PROBLEMS[problem], text, len(tail)))
        parsed.records_read += 1
    return parsed


class _KnownIds:
    """Event ids already stored, loaded per ``event_date`` partition as batches need them.

    Uniqueness is enforced within an event's date partition: a re-sent event carries its
    original timestamp. The ``event_ids_unique`` asset check watches the whole table.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.loaded: set[object] = set()
        self.ids = pl.Series("event_id", [], dtype=pl.String)

    def new_events(self, events: pl.DataFrame) -> pl.DataFrame:
        """``events`` less those stored before or repeated in the batch (first one kept)."""
        ids = events.get_column("event_id")
        if ids.n_unique() < events.height:
            events = events.unique("event_id", keep="first", maintain_order=True)
        dates = set(events.get_column("event_date").unique().to_list()) - self.loaded
        table = lake.scan(self.uri) if dates else None
        if table is not None:
            stored = table.filter(pl.col("event_date").is_in(sorted(dates))).select("event_id")
            self.ids.append(stored.collect().to_series())
        self.loaded |= dates
        if self.ids.is_empty():
            return events
        return events.filter(pl.col("event_id").is_in(self.ids).not_())

    def remember(self, written: pl.DataFrame) -> None:
        self.ids.append(written.get_column("event_id"))


def _unseen_quarantine(paths: Paths, rows: pl.DataFrame) -> pl.DataFrame:
    """Drop quarantine rows a crashed earlier run already wrote (same file and record)."""
    table = lake.scan(paths.table_uri(QUARANTINE))
    if table is None or rows.is_empty():
        return rows
    files = rows.get_column("source_file").unique().to_list()
    stored = (
        table.filter(pl.col("source_file").is_in(files))
        .select("source_file", "record_index")
        .collect()
    )
    return rows.join(stored, on=["source_file", "record_index"], how="anti")


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
