"""What a format reader returns: text records for validation, and what it could not read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import polars as pl


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
    """Merge ``extras[i]`` into the JSON ``attributes`` of row ``rows[i]``, so nothing is lost."""
    column = frame.get_column("attributes")
    merged = []
    for text, extra in zip(column.gather(rows).to_list(), extras, strict=True):
        base: object = {}
        if text:
            try:
                base = orjson.loads(text)
            except orjson.JSONDecodeError:
                base = text
        if not isinstance(base, dict):
            base = {"attributes": base}
        merged.append(orjson.dumps({**base, **extra}, default=str).decode())
    return frame.with_columns(column.scatter(rows, pl.Series(merged, dtype=pl.String)))
