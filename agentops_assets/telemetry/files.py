"""Landing files -> validated, redacted event rows and quarantine rows (no table touched).

A file is read alone (``read_file``, ``read_chunks`` for a large JSONL file) or with other
small files (``read_files``): then their records are validated and redacted as one frame and
handed back file by file, each exactly as it would be read alone.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import polars as pl

from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.landing import (
    WHOLE_FILE_PROBLEMS,
    FileContent,
    LandingFile,
    content_in_chunks,
    read_content,
)
from agentops_assets.telemetry.otlp import read_otlp, read_otlp_protobuf
from agentops_assets.telemetry.parsed import ParsedRecords, Reject
from agentops_assets.telemetry.redact import quarantine_secret_keys, redact_frame
from agentops_assets.telemetry.schema import (
    EVENT_SCHEMA,
    QUARANTINE_SCHEMA,
    RAW_SCHEMA,
    TEXT_FIELDS,
)
from agentops_assets.telemetry.validate import one_timestamp_format, validate

RAW_TEXT_LIMIT: Final = 65_536  # characters of a quarantined record kept in the table
_READERS: Final = {
    "jsonl": read_jsonl,
    "otlp_json": read_otlp,
    "otlp_protobuf": read_otlp_protobuf,
}
_FILE_PROBLEMS: Final = {
    "binary_file": "The file is binary, not text telemetry.",
    "invalid_gzip": "The file is not a readable gzip stream.",
    "truncated_file": "The gzip stream ends early; the rest of the file could not be read.",
    "symlink_refused": "The file is a symbolic link; links are never followed, nothing was read.",
    "not_a_regular_file": "The file is a FIFO, socket or device, not a regular file; not read.",
    "decompressed_too_large": "The file holds more than {mb:,} MB once decompressed, over the "
    "AGENTOPS_MAX_DECOMPRESSED_MB limit; none of it was ingested.",
}
DEFAULT_MAX_DECOMPRESSED_MB: Final = 2048
DEFAULT_CHUNK_BYTES: Final = 64 << 20


@dataclass(frozen=True)
class ReadLimits:
    """How many bytes of one landing file are read: in all, and at once."""

    max_bytes: int = DEFAULT_MAX_DECOMPRESSED_MB << 20  # decompressed; more is quarantined
    # JSONL text parsed at once: a larger file is read, parsed and committed in chunks of
    # lines. OTLP JSON is one document, read whole (up to max_bytes).
    chunk_bytes: int = DEFAULT_CHUNK_BYTES

    @classmethod
    def from_env(cls, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> ReadLimits:
        """Limits with ``max_bytes`` from ``AGENTOPS_MAX_DECOMPRESSED_MB`` (default 2048).

        Raises:
            ValueError: The variable is not a whole number of megabytes, at least 1.
        """
        raw = os.environ.get("AGENTOPS_MAX_DECOMPRESSED_MB", "").strip()
        if not raw:
            return cls(chunk_bytes=chunk_bytes)
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(
                f"AGENTOPS_MAX_DECOMPRESSED_MB must be a whole number of megabytes, at least 1, "
                f"not {raw!r}."
            )
        return cls(int(raw) << 20, chunk_bytes)


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

    def add(self, chunk: FileResult) -> None:
        """Count a later chunk of the same file in."""
        self.records += chunk.records
        self.good_rows += chunk.good_rows
        self.new_rows += chunk.new_rows
        self.quarantined_rows += chunk.quarantined_rows
        self.duration_ms += chunk.duration_ms
        self.reasons.update(chunk.reasons)


@dataclass(frozen=True)
class ParsedFile:
    """One landing file, or one chunk of a large one, ready to commit."""

    result: FileResult  # the counts of this file or chunk
    events: pl.DataFrame | str  # a frame, or the IPC file a worker process wrote it to
    quarantine: pl.DataFrame
    final: bool = True  # the whole file, or its last chunk: the file can be recorded


def read_file(
    file: LandingFile, ingested_at: datetime, *, limits: ReadLimits = ReadLimits()
) -> ParsedFile | None:
    """Read, validate and redact one landing file; touches no table (runs in a thread).

    Returns ``None`` for a JSONL file longer than one chunk: ``read_chunks`` reads it.
    """
    return read_files([file], ingested_at, limits=limits)[0]


def read_files(
    files: Sequence[LandingFile], ingested_at: datetime, *, limits: ReadLimits = ReadLimits()
) -> list[ParsedFile | None]:
    """``read_file`` for each of several landing files, validated and redacted as one frame.

    Small files (an OTLP/HTTP request each) cost mostly the fixed price of validation and
    redaction, a few dozen polars queries per frame; read together they pay it once. Every
    rule is checked row by row, so each file's rows, rejects and counts are exactly what
    ``read_file`` gives for it alone. ``None`` where ``read_file`` would return it.
    """
    read: list[_Read | None] = []
    for file in files:
        started = time.perf_counter()
        chunked = file.source_format == "jsonl" and limits.chunk_bytes < limits.max_bytes
        if chunked and not file.compressed and file.size > limits.chunk_bytes:
            read.append(None)
            continue
        content = read_content(file, limit=limits.chunk_bytes if chunked else limits.max_bytes)
        if chunked and content.problem == "decompressed_too_large":
            read.append(None)
            continue
        parsed = _parse(file, content, limits)
        result = _result(file, content.content_hash)
        read.append(_Read(file, result, parsed, time.perf_counter() - started))
    done = _checked([r for r in read if r is not None], ingested_at)
    return [None if r is None else next(done) for r in read]


def read_chunks(
    file: LandingFile, ingested_at: datetime, *, limits: ReadLimits = ReadLimits()
) -> Iterator[ParsedFile]:
    """Read a large JSONL landing file a chunk of lines at a time, within ``limits``.

    The file is measured first: over ``limits.max_bytes`` it is one quarantine row and no
    chunk is parsed. Line numbers count from the start of the file; the last chunk is final.
    """
    started = time.perf_counter()
    with content_in_chunks(file, limit=limits.max_bytes, chunk_bytes=limits.chunk_bytes) as (
        measured,
        chunks,
    ):
        result = _result(file, measured.content_hash)
        if measured.problem in WHOLE_FILE_PROBLEMS:
            yield _parsed(file, result, measured, ingested_at, limits, started)
            return
        line = 0
        for data, final in chunks:
            problem = measured.problem if final else None  # truncated_file: the tail
            content = FileContent(measured.content_hash, data, problem, len(data))
            piece = dataclasses.replace(result, reasons=Counter())
            yield _parsed(file, piece, content, ingested_at, limits, started, line, final)
            line += data.count(b"\n")
            started = time.perf_counter()


def _result(file: LandingFile, content_hash: str) -> FileResult:
    return FileResult(
        path=file.name,
        content_hash=content_hash,
        size_bytes=file.size,
        modified_at=file.modified_at,
        source_format=file.source_format,
    )


def _parsed(
    file: LandingFile,
    result: FileResult,
    content: FileContent,
    ingested_at: datetime,
    limits: ReadLimits,
    started: float,
    first_line: int = 0,
    final: bool = True,
) -> ParsedFile:
    """Validate and redact what was read of a file (all of it, or a chunk of lines)."""
    parsed = _parse(file, content, limits)
    if first_line:
        parsed = _shifted(parsed, first_line)
    read = _Read(file, result, parsed, time.perf_counter() - started)
    return next(_checked([read], ingested_at, final=final))


@dataclass(frozen=True)
class _Read:
    """A file (or chunk) as its reader left it, before validation."""

    file: LandingFile
    result: FileResult
    parsed: ParsedRecords
    seconds: float  # spent reading and parsing it


def _checked(
    reads: Sequence[_Read], ingested_at: datetime, *, final: bool = True
) -> Iterator[ParsedFile]:
    """Validate, screen and redact the records of several reads at once; one result each.

    Records whose frames have the same columns and types, and whose timestamps take the same
    path in ``validate``, are checked as one frame, numbered by position; rows and failures
    are then handed back to their own file under their own record index, in their order.
    """
    started = time.perf_counter()
    events: list[pl.DataFrame] = [EVENT_SCHEMA.to_frame()] * len(reads)
    failures: list[list[Reject]] = [[] for _ in reads]
    for members in _alike(reads):
        _check_together(reads, members, ingested_at, events, failures)
    quarantines = []
    for read, good, failed in zip(reads, events, failures, strict=True):
        result = read.result
        rejects = read.parsed.rejects + failed
        result.records = read.parsed.records_read
        result.good_rows = good.height
        result.quarantined_rows = len(rejects)
        result.reasons.update(r.reason for r in rejects)
        quarantines.append(_quarantine_frame(read.file, result, rejects, ingested_at))
    events = _split(redact_frame(_concat(events, EVENT_SCHEMA), TEXT_FIELDS), events)
    quarantines = _split(
        redact_frame(_concat(quarantines, QUARANTINE_SCHEMA), ["raw_text", "detail"]), quarantines
    )
    # The shared work is shared out by records, so a file's duration stays comparable.
    shared = time.perf_counter() - started
    records = sum(read.parsed.records_read for read in reads) or 1
    for read, good, quarantine in zip(reads, events, quarantines, strict=True):
        share = shared * read.parsed.records_read / records
        read.result.duration_ms = (read.seconds + share) * 1000
        yield ParsedFile(read.result, good, quarantine, final)


def _alike(reads: Sequence[_Read]) -> list[list[int]]:
    """Positions of the reads that can be validated as one frame, in groups."""
    frames = [read.parsed.records for read in reads]
    iso = one_timestamp_format([frame.get_column("ts") for frame in frames])
    groups: dict[tuple[object, ...], list[int]] = {}
    for n, (frame, one_format) in enumerate(zip(frames, iso, strict=True)):
        key = (tuple(frame.columns), tuple(map(str, frame.dtypes)), one_format)
        groups.setdefault(key, []).append(n)
    return list(groups.values())


def _check_together(
    reads: Sequence[_Read],
    members: list[int],
    ingested_at: datetime,
    events: list[pl.DataFrame],
    failures: list[list[Reject]],
) -> None:
    """Validate the records of ``reads[members]`` as one frame; fill their events, failures."""
    frames = [reads[n].parsed.records for n in members]
    # One chunk: polars 2.1 panics in some string expressions of validate on a many-chunk frame.
    combined = pl.concat(frames, rechunk=True) if len(frames) > 1 else frames[0]
    original = combined.get_column("_index")
    owner = pl.Series(
        [n for n, frame in zip(members, frames, strict=True) for _ in range(frame.height)],
        dtype=pl.Int64,
    )
    numbered = combined.with_columns(_index=pl.int_range(pl.len(), dtype=pl.Int64))
    checked = quarantine_secret_keys(validate(numbered, now=ingested_at))
    owners = owner.gather(checked.rows.get_column("_index"))
    formats = pl.Series([read.file.source_format for read in reads], dtype=pl.String)
    names = pl.Series([read.file.name for read in reads], dtype=pl.String)
    rows = (
        checked.rows.drop("_index")
        .with_columns(
            event_date=pl.col("ts").dt.date(),
            source_format=formats.gather(owners),
            source_file=names.gather(owners),
            ingested_at=pl.lit(ingested_at, dtype=EVENT_SCHEMA["ingested_at"]),
        )
        .select(EVENT_SCHEMA.names())
    )
    # Positions only grow through validation, so each file's rows are one run, in order.
    edges = pl.Series([*members, len(reads)], dtype=pl.Int64)
    bounds = owners.search_sorted(edges, side="left").to_list()
    for n, begin, end in zip(members, bounds[:-1], bounds[1:], strict=True):
        events[n] = rows.slice(begin, end - begin)
    failed = checked.failures
    at = failed.get_column("_index")
    for n, index, reason, detail in zip(
        owner.gather(at).to_list(),
        original.gather(at).to_list(),
        failed.get_column("reason").to_list(),
        failed.get_column("detail").to_list(),
        strict=True,
    ):
        failures[n].append(Reject(index, reason, detail, reads[n].parsed.raw(index), -1))


def _concat(frames: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    if len(frames) == 1:
        return frames[0]  # one file, maybe a large one: not copied
    return pl.concat(frames, rechunk=True) if frames else schema.to_frame()


def _split(frame: pl.DataFrame, parts: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """``frame`` cut back into pieces as tall as ``parts``, in order."""
    pieces, offset = [], 0
    for part in parts:
        pieces.append(frame.slice(offset, part.height))
        offset += part.height
    return pieces


def _shifted(parsed: ParsedRecords, lines: int) -> ParsedRecords:
    """Records of a chunk numbered from the start of the file: ``lines`` lines come before."""
    raw = parsed.raw
    return ParsedRecords(
        parsed.records.with_columns(pl.col("_index") + lines),
        [dataclasses.replace(r, index=r.index + lines) for r in parsed.rejects],
        lambda index: raw(index - lines),
        parsed.records_read,
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


def _parse(file: LandingFile, content: FileContent, limits: ReadLimits) -> ParsedRecords:
    problem = content.problem
    if problem in WHOLE_FILE_PROBLEMS or (
        problem == "truncated_file" and file.source_format != "jsonl"
    ):
        raw = content.data[:RAW_TEXT_LIMIT].decode("utf-8", errors="backslashreplace")
        detail = _FILE_PROBLEMS[problem].format(mb=limits.max_bytes >> 20)
        reject = Reject(0, problem, detail, raw, content.size)
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
