"""Stream messages -> validated, redacted event rows and quarantine rows (no table touched).

The same readers, validation, secret check and redaction as a landing file gets, run once
over a whole micro-batch: validation costs about the same for one record or thousands, so
every message's records go through it together, kept apart by the message's position in the
high bits of ``_index``. A message that cannot be read at all (a field missing, an unknown
kind, a broken gzip body) becomes one quarantine row saying why.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl

from agentops_assets.stream.base import Message
from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.otlp import read_otlp, read_otlp_protobuf
from agentops_assets.telemetry.parsed import ParsedRecords, Reject
from agentops_assets.telemetry.redact import quarantine_secret_keys, redact_frame
from agentops_assets.telemetry.schema import EVENT_SCHEMA, QUARANTINE_SCHEMA, TEXT_FIELDS
from agentops_assets.telemetry.validate import validate

__all__ = ["MESSAGE_COLUMN", "ParsedBatch", "parse_messages", "source_name"]

MESSAGE_COLUMN: Final = "_message"  # position of a row's message in the batch
RAW_TEXT_LIMIT: Final = 65_536  # characters of a quarantined record kept, as for files
DEFAULT_MAX_BYTES: Final = 256 << 20  # decompressed bytes of one message
_SHIFT: Final = 32  # record indices of one message stay below 2**32
_READERS: Final = {"jsonl": read_jsonl, "otlp_json": read_otlp, "otlp_protobuf": read_otlp_protobuf}
_PROTOBUF: Final = "application/x-protobuf"


@dataclass(frozen=True)
class ParsedBatch:
    """A micro-batch ready to commit; both frames carry ``MESSAGE_COLUMN`` besides the schema."""

    events: pl.DataFrame
    quarantine: pl.DataFrame
    records: int


class _Unreadable(Exception):
    """A message that holds no readable body: quarantined whole."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def source_name(stream: str, message_id: str) -> str:
    """What ``source_file`` says for rows of a message: ``stream:<name>/<id>``."""
    return f"stream:{stream}/{message_id}"


def parse_messages(
    messages: list[Message],
    *,
    stream: str,
    ingested_at: datetime,
    now: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ParsedBatch:
    """Read, validate and redact the records of ``messages`` (in the order given).

    Args:
        messages: The micro-batch.
        stream: The stream's name, for ``source_file``.
        ingested_at: The batch's ingestion time, for the ``ingested_at`` column.
        now: What validation judges timestamps against (default ``ingested_at``).
        max_bytes: Most bytes a message's body may decompress to; more is quarantined.
    """
    formats = [_format(m) for m in messages]
    sources = [source_name(stream, m.id) for m in messages]
    hashes = [hashlib.sha256(m.fields.get("body", b"")).hexdigest() for m in messages]
    records: list[pl.DataFrame] = []
    rejects: list[tuple[int, Reject]] = []
    raws = {}
    read = 0
    for n, message in enumerate(messages):
        parsed = _parse(message, formats[n], sources[n], max_bytes)
        read += parsed.records_read
        raws[n] = parsed.raw
        rejects += [(n, r) for r in parsed.rejects]
        if parsed.records.height:
            records.append(parsed.records.with_columns(pl.col("_index") + (n << _SHIFT)))
    rows, failures = _validated(records, now or ingested_at)
    for index, reason, detail in failures.iter_rows():
        n, local = index >> _SHIFT, index & ((1 << _SHIFT) - 1)
        rejects.append((n, Reject(local, reason, detail, raws[n](local), -1)))
    rejects.sort(key=lambda pair: (pair[0], pair[1].index))
    events = _events(rows, formats, sources, ingested_at)
    quarantine = _quarantine(rejects, formats, sources, hashes, ingested_at)
    return ParsedBatch(events, quarantine, read)


def _format(message: Message) -> str:
    kind = message.fields.get("kind", b"").decode(errors="replace")
    media = message.fields.get("content_type", b"").decode(errors="replace")
    if kind == "traces":
        return "otlp_protobuf" if media.split(";")[0].strip().lower() == _PROTOBUF else "otlp_json"
    return "jsonl"


def _parse(message: Message, fmt: str, source: str, max_bytes: int) -> ParsedRecords:
    try:
        data = _body(message, fmt, max_bytes)
    except _Unreadable as bad:
        body = message.fields.get("body", b"")
        raw = body[:RAW_TEXT_LIMIT].decode("utf-8", errors="backslashreplace")
        return ParsedRecords(
            pl.DataFrame(), [Reject(0, bad.reason, bad.detail, raw, len(body))], records_read=1
        )
    return _READERS[fmt](data, source_file=source)


def _body(message: Message, fmt: str, max_bytes: int) -> bytes:
    """The message's body, decompressed and checked as ingestion checks a landing file."""
    fields = message.fields
    missing = [k for k in ("kind", "content_type", "encoding", "body") if k not in fields]
    if missing:
        raise _Unreadable(
            "invalid_stream_message",
            f"The stream message lacks {', '.join(missing)}; the receiver publishes kind, "
            "content_type, encoding and body.",
        )
    kind = fields["kind"].decode(errors="replace")
    if kind not in ("traces", "events"):
        raise _Unreadable(
            "invalid_stream_message",
            f"The stream message's kind is {kind[:40]!r}; expected traces or events.",
        )
    encoding = fields["encoding"].decode(errors="replace").strip().lower()
    body = fields["body"]
    if encoding in ("gzip", "x-gzip"):
        body = _gunzip(body, max_bytes)
    elif encoding not in ("", "identity"):
        raise _Unreadable(
            "invalid_stream_message",
            f"The stream message's encoding is {encoding[:40]!r}; expected gzip or identity.",
        )
    if len(body) > max_bytes:
        raise _Unreadable(
            "decompressed_too_large", f"The message holds more than {max_bytes:,} bytes."
        )
    if fmt != "otlp_protobuf" and b"\x00" in body[:8192]:
        raise _Unreadable("binary_file", "The message is binary, not text telemetry.")
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            piece = inflater.decompress(rest, limit - size + 1)
        except zlib.error:
            raise _Unreadable(
                "invalid_gzip", "The message is not a readable gzip stream."
            ) from None
        size += len(piece)
        if size > limit or inflater.unconsumed_tail:
            raise _Unreadable(
                "decompressed_too_large", f"The message decompresses to more than {limit:,} bytes."
            )
        if not inflater.eof:
            raise _Unreadable("truncated_file", "The message's gzip stream ends early.")
        parts.append(piece)
        rest = inflater.unused_data
    return b"".join(parts)


def _validated(
    records: list[pl.DataFrame], now: datetime
) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """Validation and the secret check over every message's records (one call per schema)."""
    by_schema: dict[tuple, list[pl.DataFrame]] = {}
    for frame in records:
        by_schema.setdefault(tuple(frame.schema.items()), []).append(frame)
    rows, failures = [], []
    for frames in by_schema.values():
        checked = quarantine_secret_keys(validate(pl.concat(frames), now=now))
        rows.append(checked.rows)
        failures.append(checked.failures)
    if not rows:
        empty = pl.DataFrame(schema={"_index": pl.Int64, "reason": pl.String, "detail": pl.String})
        return None, empty
    return pl.concat(rows), pl.concat(failures)


def _events(
    rows: pl.DataFrame | None, formats: list[str], sources: list[str], ingested_at: datetime
) -> pl.DataFrame:
    schema = {**EVENT_SCHEMA, MESSAGE_COLUMN: pl.Int64()}
    if rows is None or rows.is_empty():
        return pl.DataFrame(schema=schema)
    message = (pl.col("_index") // (1 << _SHIFT)).cast(pl.Int64)
    events = rows.with_columns(
        event_date=pl.col("ts").dt.date(),
        source_format=message.replace_strict(list(range(len(formats))), formats),
        source_file=message.replace_strict(list(range(len(sources))), sources),
        ingested_at=pl.lit(ingested_at, dtype=EVENT_SCHEMA["ingested_at"]),
        **{MESSAGE_COLUMN: message},
    )
    return redact_frame(events.select(list(schema)), TEXT_FIELDS)


def _quarantine(
    rejects: list[tuple[int, Reject]],
    formats: list[str],
    sources: list[str],
    hashes: list[str],
    ingested_at: datetime,
) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "source_file": [sources[n] for n, _ in rejects],
            "record_index": [r.index for _, r in rejects],
            "source_format": [formats[n] for n, _ in rejects],
            "reason": [r.reason for _, r in rejects],
            "detail": [r.detail for _, r in rejects],
            "raw_text": [r.raw[:RAW_TEXT_LIMIT] for _, r in rejects],
            "raw_bytes": [
                r.raw_bytes if r.raw_bytes >= 0 else len(r.raw.encode()) for _, r in rejects
            ],
            "file_hash": [hashes[n] for n, _ in rejects],
            "ingested_at": [ingested_at] * len(rejects),
            MESSAGE_COLUMN: [n for n, _ in rejects],
        },
        schema={**QUARANTINE_SCHEMA, MESSAGE_COLUMN: pl.Int64()},
    )
    return redact_frame(frame, ["raw_text", "detail"])
