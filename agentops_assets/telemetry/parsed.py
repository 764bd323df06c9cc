"""What a format reader returns: text records for validation, and what it could not read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import orjson
import polars as pl

MAX_RECORD_BYTES: Final = 1 << 20  # a larger record (JSONL line, OTLP span) is quarantined


@dataclass(frozen=True)
class Reject:
    """A record the reader could not turn into a row, kept for quarantine."""

    index: int  # 1-based line number (JSONL) or span index (OTLP); 0 for the whole file
    reason: str  # short code: invalid_json, invalid_utf8, not_an_object, missing_field, ...
    detail: str  # one sentence saying what is wrong
    raw: str  # the record as read (decoded with replacement characters if not UTF-8)
    raw_bytes: int


@dataclass
class ParsedRecords:
    """One file's records as read.

    ``records`` has the columns of ``schema.RAW_SCHEMA``: ``_index`` plus every canonical field
    as text; numeric fields may instead arrive as numbers. Validation casts and checks them.
    ``raw(index)`` gives back the raw text of a record, so validation can quarantine a row that
    reads but does not validate.
    ``records_read`` counts every record, good or rejected.
    """

    records: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    raw: Callable[[int], str] = lambda index: ""
    records_read: int = 0


def merge_into_attributes(
    frame: pl.DataFrame, rows: list[int], extras: list[dict[str, object]]
) -> pl.DataFrame:
    """Merge ``extras[i]`` into the JSON ``attributes`` of row ``rows[i]``, so nothing is lost.

    Extras are appended to the object's text, so what the producer sent stays as sent, a key
    sent twice or a key that is also an extra included. Values may be ``orjson.Fragment``.
    """
    column = frame.get_column("attributes")
    merged = []
    for text, extra in zip(column.gather(rows).to_list(), extras, strict=True):
        added = orjson.dumps(extra, default=str).decode()
        base: object = None
        if text:
            try:
                base = orjson.loads(text)
            except orjson.JSONDecodeError:
                base = text
        if isinstance(base, dict) and base:
            body = text.rstrip()
            merged.append(body if added == "{}" else f"{body[:-1]}, {added[1:]}")
        elif base is None or base == {}:
            merged.append(added)
        else:
            merged.append(orjson.dumps({"attributes": base, **extra}, default=str).decode())
    return frame.with_columns(column.scatter(rows, pl.Series(merged, dtype=pl.String)))
