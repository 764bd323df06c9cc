"""Reader for the native JSONL reasoning log (TELEMETRY.md)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Final

import orjson
import polars as pl

from agentops_assets.telemetry.parsed import ParsedRecords, Reject, merge_into_attributes
from agentops_assets.telemetry.schema import FIELD_TYPES, FIELDS, RAW_SCHEMA

MAX_RECORD_BYTES: Final = 1 << 20  # a larger line is quarantined, not parsed
_FEEDBACK_KEYS: Final = {
    "kind": "feedback_kind",
    "correction": "feedback_correction",
    "rationale": "feedback_rationale",
    "reviewer": "reviewer",
}
_KNOWN: Final = frozenset(FIELDS) | {"feedback"}
_TEXT_SCHEMA: Final = {name: pl.String for name in (*FIELDS, "feedback")}
# Numbers read as numbers when every line agrees, which spares a number-to-text round trip;
# a file where one line disagrees is read as text and validation says which line is wrong.
_TYPED_SCHEMA: Final = {
    **_TEXT_SCHEMA,
    **{
        name: pl.Int64 if dtype.is_integer() else pl.Float64
        for name, dtype in FIELD_TYPES.items()
        if dtype.is_numeric()
    },
}


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _classify(error: orjson.JSONDecodeError) -> tuple[str, str]:
    message = str(error)
    if "UTF-8" in message or "utf-8" in message:
        return "invalid_utf8", "The line is not valid UTF-8."
    if "unexpected end" in message.lower() or "EOF" in message:
        return "truncated_record", f"The line ends before its JSON object does ({message})."
    return "invalid_json", f"The line is not valid JSON ({message})."


def read_jsonl(data: bytes, *, source_file: str = "") -> ParsedRecords:
    """Read one native JSONL file's bytes into text records and rejects.

    Every non-blank line is one record. Lines that are not JSON objects are rejected with a
    reason; keys outside the contract are kept in ``attributes``.
    """
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the final newline ends the last record, it does not start one

    def raw(index: int) -> str:
        return _decode(lines[index - 1])

    if _all_plain_records(lines):
        records = _frame(data, range(1, len(lines) + 1), {})
        return ParsedRecords(records, [], raw, records_read=len(lines))
    good, rejects, extras = _sort_lines(lines)
    body = b"\n".join(lines[number - 1] for number in good)
    records = _frame(body, good, extras)
    return ParsedRecords(records, rejects, raw, records_read=len(good) + len(rejects))


def _all_plain_records(lines: list[bytes]) -> bool:
    """The common case, checked at C speed: every line a JSON object with known keys only."""
    if not lines or max(map(len, lines)) > MAX_RECORD_BYTES:
        return False
    try:
        return all(map(_KNOWN.issuperset, map(orjson.loads, lines)))
    except (orjson.JSONDecodeError, TypeError):
        return False


def _sort_lines(
    lines: list[bytes],
) -> tuple[list[int], list[Reject], dict[int, dict[str, object]]]:
    """Line by line: good line numbers, rejects, and unknown keys by good-row position."""
    good: list[int] = []
    rejects: list[Reject] = []
    extras: dict[int, dict[str, object]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_RECORD_BYTES:
            detail = (
                f"The line has {len(line):,} bytes; records are limited to "
                f"{MAX_RECORD_BYTES:,} bytes."
            )
            rejects.append(
                Reject(number, "record_too_large", detail, _decode(line[:65536]), len(line))
            )
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            reason, detail = _classify(error)
            rejects.append(Reject(number, reason, detail, _decode(line), len(line)))
            continue
        if type(record) is not dict:
            detail = f"Expected a JSON object, got a {type(record).__name__}."
            rejects.append(Reject(number, "not_an_object", detail, _decode(line), len(line)))
            continue
        if not record.keys() <= _KNOWN:
            extras[len(good)] = {k: v for k, v in record.items() if k not in _KNOWN}
        good.append(number)
    return good, rejects, extras


def _frame(body: bytes, good: Sequence[int], extras: dict[int, dict[str, object]]) -> pl.DataFrame:
    if not good:
        return RAW_SCHEMA.to_frame()
    try:
        frame = pl.read_ndjson(io.BytesIO(body), schema=_TYPED_SCHEMA)
    except pl.exceptions.PolarsError:
        frame = pl.read_ndjson(io.BytesIO(body), schema=_TEXT_SCHEMA)
    feedback = pl.col("feedback")
    frame = frame.with_columns(
        *(
            pl.coalesce(pl.col(column), feedback.str.json_path_match(f"$.{key}")).alias(column)
            for key, column in _FEEDBACK_KEYS.items()
        ),
        _index=pl.Series(good, dtype=pl.Int64),
    )
    if extras:
        frame = merge_into_attributes(frame, list(extras), list(extras.values()))
    return frame.select(RAW_SCHEMA.names())
