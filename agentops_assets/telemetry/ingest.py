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

import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final

import polars as pl

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
from agentops_assets.telemetry.otlp import read_otlp
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
MAX_WORKERS: Final = 4
PROCESS_POOL_BYTES: Final = 64 << 20  # OTLP bytes that make worker processes pay off
_READERS: Final = {"jsonl": read_jsonl, "otlp_json": read_otlp}
_FILE_PROBLEMS: Final = {
    "binary_file": "The file is binary, not text telemetry.",
    "invalid_gzip": "The file is not a readable gzip stream.",
    "truncated_file": "The gzip stream ends early; the rest of the file could not be read.",
}

_EVENTS_WRITER: Final = lake.writer_properties(
    unique=("event_id", "trace_id", "parent_id"),
    free_text=("input_context", "reasoning_summary", "result", "attributes"),
)

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
        try:
            for done, parsed in enumerate(_read_ahead(todo, ingested_at), start=1):
                writer.add(parsed)
                read += parsed.result.records
                if writer.buffered >= batch_rows:
                    writer.flush()
                if progress:
                    progress(done, len(todo), read)
        finally:
            writer.close()
    return IngestReport(writer.results, skipped, time.perf_counter() - started)


def _read_ahead(files: list[LandingFile], ingested_at: datetime) -> Iterator[_ParsedFile]:
    """Parse files in parallel, yielded in order, a bounded window ahead of the writer.

    JSONL parses in threads: file reads, hashing and polars release the GIL. The OTLP reader
    is Python walking span trees, which holds the GIL, so a large OTLP landing parses in worker
    processes instead (starting them costs about a second). Workers hand their rows back as
    Arrow IPC files in a scratch folder, which is cheaper than pickling them through a pipe.
    """
    workers = max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    otlp_bytes = sum(f.size for f in files if f.source_format == "otlp_json")
    with contextlib.ExitStack() as stack:
        threads = stack.enter_context(ThreadPoolExecutor(workers))
        processes: ProcessPoolExecutor | None = None
        if workers > 1 and otlp_bytes >= PROCESS_POOL_BYTES:
            spawn = multiprocessing.get_context("spawn")
            processes = stack.enter_context(ProcessPoolExecutor(workers, mp_context=spawn))
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="agentops-ingest-"))
        window: deque[Future[_ParsedFile]] = deque()
        for file in files:
            if processes is not None and file.source_format == "otlp_json":
                window.append(processes.submit(_read_file_to_ipc, file, ingested_at, scratch))
            else:
                window.append(threads.submit(_read_file, file, ingested_at))
            if len(window) > 2 * workers:
                yield _loaded(window.popleft().result())
        while window:
            yield _loaded(window.popleft().result())


def _read_file_to_ipc(file: LandingFile, ingested_at: datetime, scratch: str) -> _ParsedFile:
    """``_read_file`` in a worker process; the events go back as an IPC file path."""
    parsed = _read_file(file, ingested_at)
    fd, path = tempfile.mkstemp(suffix=".arrow", dir=scratch)
    with os.fdopen(fd, "wb") as out:
        parsed.events.write_ipc(out, compression="uncompressed")
    return dataclasses.replace(parsed, events=path)


def _loaded(parsed: _ParsedFile) -> _ParsedFile:
    if isinstance(parsed.events, pl.DataFrame):
        return parsed
    events = pl.read_ipc(parsed.events)
    os.unlink(parsed.events)
    return dataclasses.replace(parsed, events=events)


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
    events: pl.DataFrame | str  # a frame, or the IPC file a worker process wrote it to
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
    """Buffers parsed files and commits each batch: events, then quarantine, then file records.

    Commits run on one background thread, in order, one batch at a time, so parsing goes on
    while a batch is written and at most two batches are held in memory.
    """

    def __init__(self, paths: Paths, ingested_at: datetime) -> None:
        self.paths = paths
        self.ingested_at = ingested_at
        self.batch: list[_ParsedFile] = []
        self.buffered = 0
        self.results: list[FileResult] = []
        self._known_ids = _KnownIds(paths.table_uri(AGENT_EVENTS))
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="agentops-commit")
        self._commit: Future[None] | None = None

    def add(self, parsed: _ParsedFile) -> None:
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

    def _write(self, batch: list[_ParsedFile]) -> None:
        results = [parsed.result for parsed in batch]
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
        quarantine = pl.concat(parsed.quarantine for parsed in batch)
        lake.append(
            self.paths.table_uri(QUARANTINE),
            _unseen_quarantine(self.paths, quarantine),
            metadata=metadata,
        )
        new_per_file = dict(new.group_by("source_file").len().iter_rows())
        for result in results:
            result.new_rows = new_per_file.get(result.path, 0)
            result.duplicate_rows = result.good_rows - result.new_rows
        lake.append(
            self.paths.table_uri(INGESTED_FILES),
            _files_frame(results, self.ingested_at),
            metadata=metadata,
        )
        self.results.extend(results)


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
