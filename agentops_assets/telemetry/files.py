"""One landing file -> validated, redacted event rows and quarantine rows (no table touched)."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import polars as pl

from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.landing import FileContent, LandingFile, read_content
from agentops_assets.telemetry.otlp import read_otlp
from agentops_assets.telemetry.parsed import ParsedRecords, Reject
from agentops_assets.telemetry.redact import redact_frame
from agentops_assets.telemetry.schema import (
    EVENT_SCHEMA,
    QUARANTINE_SCHEMA,
    RAW_SCHEMA,
    TEXT_FIELDS,
)
from agentops_assets.telemetry.validate import validate

RAW_TEXT_LIMIT: Final = 65_536  # characters of a quarantined record kept in the table
_READERS: Final = {"jsonl": read_jsonl, "otlp_json": read_otlp}
_FILE_PROBLEMS: Final = {
    "binary_file": "The file is binary, not text telemetry.",
    "invalid_gzip": "The file is not a readable gzip stream.",
    "truncated_file": "The gzip stream ends early; the rest of the file could not be read.",
}


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


@dataclass(frozen=True)
class ParsedFile:
    result: FileResult
    events: pl.DataFrame | str  # a frame, or the IPC file a worker process wrote it to
    quarantine: pl.DataFrame


def read_file(file: LandingFile, ingested_at: datetime) -> ParsedFile:
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
    return ParsedFile(
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
