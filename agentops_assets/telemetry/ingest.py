"""Ingestion: landing files -> ``agent_events``, ``agent_events_quarantine``, ``ingested_files``.

Rules (docs/telemetry.md): each landing file is ingested once; an ``event_id`` is stored once even
when re-sent in another file; every record read is either stored or quarantined with a
reason; secrets are redacted before the write; landing files are never modified.

Crash safety: each table is written in whole Delta commits, events first, then quarantine,
then the file record, written once the file's last row is committed. A run killed in between
leaves the file unrecorded, so the next run reads it again, after deleting the rows the killed
run stored for it: every table ends as a clean run's would, ``ingested_files`` included.

Bounded: a file that decompresses to more than ``AGENTOPS_MAX_DECOMPRESSED_MB`` is quarantined
unread (``decompressed_too_large``) and recorded; a large JSONL file is decompressed, parsed and
committed a chunk of lines at a time, so memory does not grow with the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import polars as pl

from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.commit import BatchWriter, discard_unrecorded
from agentops_assets.telemetry.files import (
    DEFAULT_CHUNK_BYTES,
    FileResult,
    ParsedFile,
    ReadLimits,
    read_chunks,
    read_file,  # noqa: F401  (re-exported: callers import it from here too)
    read_files,
)
from agentops_assets.telemetry.landing import LandingFile, discover, file_digest, pending_files
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES

# Events buffered before a commit; bounds memory. Commits run while later files are parsed,
# so smaller batches leave less of the writing to the end of a run (a commit costs ~0.1 s).
DEFAULT_BATCH_ROWS: Final = 50_000
MAX_WORKERS: Final = 4
PROCESS_POOL_BYTES: Final = 16 << 20  # OTLP bytes that make worker processes pay off
BATCH_FILES: Final = 64  # small files read, validated and redacted together
BATCH_BYTES: Final = 4 << 20  # stored bytes of one such batch
Progress = Callable[[int, int, int], None]  # files done, files to do, events read so far


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
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> IngestReport:
    """Ingest every landing file not ingested before.

    Writers of the telemetry tables on this machine take turns (a file lock), so two runs at
    once neither duplicate nor lose anything.

    Args:
        paths: The storage layout.
        batch_rows: Events buffered before they are committed; bounds peak memory.
        progress: Called after each file with (files done, files to do, events read).
        now: The ingestion time (tests pin it); future timestamps are judged against it.
        chunk_bytes: JSONL text parsed at once; a larger file is read in chunks of lines.

    Raises:
        ValueError: ``AGENTOPS_MAX_DECOMPRESSED_MB`` is not a whole number of megabytes.
    """
    started = time.perf_counter()
    limits = ReadLimits.from_env(chunk_bytes=chunk_bytes)
    with lake.writer_lock(paths, AGENT_EVENTS):
        ingested_at = now or datetime.now(UTC)
        todo, skipped = _pending(paths, discover(paths.landing_uri))
        discard_unrecorded(paths, [file.name for file in todo])
        writer = BatchWriter(paths, ingested_at)
        read = done = 0
        try:
            for parsed in _read_ahead(todo, ingested_at, limits):
                writer.add(parsed)
                read += parsed.result.records
                done += parsed.final
                if writer.buffered >= batch_rows:
                    writer.flush()
                if progress:
                    progress(done, len(todo), read)
        finally:
            writer.close()
    return IngestReport(writer.results, skipped, time.perf_counter() - started)


def _read_ahead(
    files: list[LandingFile], ingested_at: datetime, limits: ReadLimits
) -> Iterator[ParsedFile]:
    """Parse files in parallel, yielded in order, a bounded window ahead of the writer.

    Small files are read in batches (``read_files``): validation and redaction cost mostly a
    fixed price per frame, paid once per batch instead of once per file. JSONL parses in
    threads: file reads, hashing and polars release the GIL. The OTLP reader is Python walking
    span trees, which holds the GIL, so an OTLP landing of some size parses in worker
    processes instead (starting them costs about a second of CPU; the first batch is read
    here meanwhile). Workers hand each batch's rows back as one Arrow IPC file in a scratch
    folder, which is cheaper than pickling them through a pipe. A JSONL file larger than a
    chunk is read here, one chunk at a time, when its turn comes.
    """
    workers = max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    otlp_bytes = sum(f.size for f in files if f.source_format.startswith("otlp"))
    with contextlib.ExitStack() as stack:
        threads = stack.enter_context(ThreadPoolExecutor(workers))
        processes: ProcessPoolExecutor | None = None
        # A daemonic process (a Celery prefork worker running the step, a multiprocessing
        # pool's worker) may not start children: it parses in threads.
        daemonic = multiprocessing.current_process().daemon
        if workers > 1 and otlp_bytes >= PROCESS_POOL_BYTES and not daemonic:
            spawn = multiprocessing.get_context("spawn")
            processes = stack.enter_context(ProcessPoolExecutor(workers, mp_context=spawn))
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="agentops-ingest-"))
        window: deque[tuple[list[LandingFile], Future[_Batch]]] = deque()

        def ready() -> Iterator[ParsedFile]:
            batch, future = window.popleft()
            for file, parsed in zip(batch, future.result().loaded(), strict=True):
                if parsed is None:
                    yield from read_chunks(file, ingested_at, limits=limits)
                else:
                    yield parsed

        def in_process(file: LandingFile) -> bool:
            return processes is not None and file.source_format.startswith("otlp")

        here = True  # the first OTLP batch is read in this process while the workers start
        for batch in _batches(files, in_process):
            if in_process(batch[0]) and not here:
                with _one_polars_thread():  # the workers start with the first submit
                    future = processes.submit(_read_to_ipc, batch, ingested_at, limits, scratch)
            else:
                here = here and not in_process(batch[0])
                future = threads.submit(_read, batch, ingested_at, limits)
            window.append((batch, future))
            if len(window) > 2 * workers:
                yield from ready()
        while window:
            yield from ready()


@contextlib.contextmanager
def _one_polars_thread() -> Iterator[None]:
    """Worker processes started meanwhile run polars on one thread (unless set otherwise).

    Each worker has one core's worth of work on small frames: a pool of threads per worker
    only spins, idle, beside the other workers (measured: ~10 % of ingest CPU).
    """
    if "POLARS_MAX_THREADS" in os.environ:
        yield
        return
    os.environ["POLARS_MAX_THREADS"] = "1"
    try:
        yield
    finally:
        os.environ.pop("POLARS_MAX_THREADS", None)


def _batches(
    files: list[LandingFile], in_process: Callable[[LandingFile], bool]
) -> Iterator[list[LandingFile]]:
    """Runs of files, in order, read together: up to ``BATCH_FILES`` files, ``BATCH_BYTES``
    bytes, and all parsed in a thread or all in a worker process."""
    batch: list[LandingFile] = []
    size = 0
    for file in files:
        if batch and (
            len(batch) >= BATCH_FILES
            or size + file.size > BATCH_BYTES
            or in_process(file) != in_process(batch[0])
        ):
            yield batch
            batch, size = [], 0
        batch.append(file)
        size += file.size
    if batch:
        yield batch


@dataclass
class _Batch:
    """What a batch of files reads to; the events of all of them may wait in one IPC file."""

    parsed: list[ParsedFile | None]
    ipc: str | None = None  # the events of every parsed file, in order, when not in ``parsed``

    def loaded(self) -> list[ParsedFile | None]:
        if self.ipc is None:
            return self.parsed
        events = pl.read_ipc(self.ipc)
        os.unlink(self.ipc)
        out: list[ParsedFile | None] = []
        offset = 0
        for parsed in self.parsed:
            if parsed is not None:
                height = parsed.events
                parsed = dataclasses.replace(parsed, events=events.slice(offset, height))
                offset += height
            out.append(parsed)
        return out


def _read(files: list[LandingFile], ingested_at: datetime, limits: ReadLimits) -> _Batch:
    return _Batch(read_files(files, ingested_at, limits=limits))


def _read_to_ipc(
    files: list[LandingFile], ingested_at: datetime, limits: ReadLimits, scratch: str
) -> _Batch:
    """``read_files`` in a worker process; the events go back as one IPC file."""
    parsed = read_files(files, ingested_at, limits=limits)
    frames = [p.events for p in parsed if p is not None]
    if not frames:
        return _Batch(parsed)
    fd, path = tempfile.mkstemp(suffix=".arrow", dir=scratch)
    with os.fdopen(fd, "wb") as out:
        pl.concat(frames).write_ipc(out, compression="uncompressed")
    heights = [p if p is None else dataclasses.replace(p, events=p.events.height) for p in parsed]
    return _Batch(heights, path)


def ingested_stamps(paths: Paths) -> set[tuple[str, int, datetime]]:
    """(path, size, mtime) of every landing file recorded in ``ingested_files``."""
    table = lake.scan(paths.table_uri(INGESTED_FILES))
    if table is None:
        return set()
    return set(table.select("path", "size_bytes", "modified_at").collect().iter_rows())


def _pending(paths: Paths, files: list[LandingFile]) -> tuple[list[LandingFile], int]:
    """Files not ingested yet: unseen (path, size, mtime), or a recorded path with new content.

    Only a file whose path is already recorded is hashed here; a new file is hashed once, when
    it is read for ingestion.
    """
    table = lake.scan(paths.table_uri(INGESTED_FILES))
    if table is None:
        return files, 0
    seen = table.select("path", "size_bytes", "modified_at", "content_hash").collect()
    stamps = set(seen.select("path", "size_bytes", "modified_at").iter_rows())
    hashes = set(seen.select("path", "content_hash").iter_rows())
    recorded = set(seen.get_column("path").to_list())
    todo = [
        file
        for file in pending_files(files, stamps)
        # A touched file with unchanged content is not new.
        if file.name not in recorded or (file.name, file_digest(file)) not in hashes
    ]
    return todo, len(files) - len(todo)
