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
    plain = _plain_frame(data)
    lines: list[bytes] = []

    def raw(index: int) -> str:
        if not lines:  # the common case never needs the lines; split them on first demand
            lines.extend(_split_lines(data))
        return _decode(lines[index - 1])

    if plain is not None:
        records = _finish(plain, range(1, plain.height + 1), {})
        return ParsedRecords(records, [], raw, records_read=plain.height)
    lines.extend(_split_lines(data))
    good, rejects, extras = _sort_lines(lines)
    body = b"\n".join(lines[number - 1] for number in good)
    records = _finish(_read(body), good, extras) if good else RAW_SCHEMA.to_frame()
    return ParsedRecords(records, rejects, raw, records_read=len(good) + len(rejects))


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the final newline ends the last record, it does not start one
    return lines


# An object key anywhere in a line of valid JSON: a string right after "{" or ",". Inside a
# string every quote is escaped, so a quote can never directly follow "{" or "," there.
_KEY: Final = r'[{,]\s*"(?:[^"\\]|\\.)*"\s*:'
# A contract field sent as null: polars shows it as missing, so it is counted apart. Only
# contract names count, so a key outside the contract sent as null still shows.
_NULL_FIELD: Final = r'[{,]\s*"(?:' + "|".join(sorted(_KNOWN)) + r')"\s*:\s*null'

_NESTED: Final = ("attributes", "feedback")
_STRING_NESTED: Final = r'[{,]\s*"(?:attributes|feedback)"\s*:\s*"'


def _plain_frame(data: bytes) -> pl.DataFrame | None:
    """The common case, proven in polars (no Python per line, threads run in parallel).

    Returns the file read into typed columns when every line is a JSON object of at most
    ``MAX_RECORD_BYTES`` whose keys are all in the contract; ``None`` sends the file down the
    line-by-line path. Keys are proven by counting: the object keys in a line must equal the
    contract fields it sets, plus the keys inside its ``attributes`` and ``feedback`` objects,
    so a key outside the contract (which polars would skip silently) never goes unnoticed.
    """
    if not data:
        return None
    expected = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    try:
        frame = _read(data)
        text = pl.read_csv(
            io.BytesIO(data),
            has_header=False,
            separator="\x00",
            quote_char=None,
            schema={"line": pl.String},
        )
    except pl.exceptions.PolarsError:
        return None  # invalid JSON, not an object, invalid UTF-8: judged line by line
    # Blank lines are skipped by both readers, but a blank line must be judged too.
    if frame.height != expected or text.height != expected:
        return None
    line = text.get_column("line")
    if line.str.len_bytes().max() > MAX_RECORD_BYTES:
        return None
    found = line.str.count_matches(_KEY)
    nested = [frame.get_column(name) for name in _NESTED]
    inner = sum(column.str.count_matches(_KEY).fill_null(0) for column in nested)
    # Keys counted inside attributes or feedback must be keys of an object there, not text of
    # a string value that merely looks like JSON (which polars hands over unescaped).
    if line.filter(inner > 0).str.contains(_STRING_NESTED).any():
        return None
    explained = frame.select(pl.sum_horizontal(pl.all().is_not_null())).to_series() + inner
    off = found != explained
    if off.any():
        nulls = line.filter(off).str.count_matches(_NULL_FIELD)
        for column in nested:  # nested keys named like fields are already counted
            nulls = nulls - column.filter(off).str.count_matches(_NULL_FIELD).fill_null(0)
        if not (found.filter(off) == explained.filter(off) + nulls).all():
            return None
    return frame


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


def _read(body: bytes) -> pl.DataFrame:
    """Contract fields of NDJSON ``body``, numbers typed when every line agrees."""
    try:
        return pl.read_ndjson(io.BytesIO(body), schema=_TYPED_SCHEMA)
    except pl.exceptions.PolarsError:
        return pl.read_ndjson(io.BytesIO(body), schema=_TEXT_SCHEMA)


def _finish(
    frame: pl.DataFrame, good: Sequence[int], extras: dict[int, dict[str, object]]
) -> pl.DataFrame:
    """Records in RAW_SCHEMA: feedback unpacked, line numbers, unknown keys in attributes."""
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
