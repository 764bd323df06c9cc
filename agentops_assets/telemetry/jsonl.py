"""Reader for the native JSONL reasoning log (docs/telemetry.md)."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

import orjson
import polars as pl

from agentops_assets.telemetry.parsed import (
    MAX_RECORD_BYTES,
    ParsedRecords,
    Reject,
    merge_into_attributes,
)
from agentops_assets.telemetry.schema import FIELD_TYPES, FIELDS, RAW_SCHEMA

__all__ = ["MAX_RECORD_BYTES", "read_jsonl"]
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

    Every non-blank line is one record. Lines that are not JSON objects, or that send a key
    twice (outside ``attributes`` and ``feedback``, which are kept as sent), are rejected with a
    reason; keys outside the contract, and a ``feedback`` the feedback columns cannot hold, are
    kept in ``attributes``.
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
    records = RAW_SCHEMA.to_frame()
    if good:
        body = b"\n".join(lines[number - 1] for number in good)
        frame, good, extras, repeated = _without_repeated_keys(
            _read(body), body, lines, good, extras
        )
        rejects = sorted(rejects + repeated, key=lambda r: r.index)
        records = _finish(frame, good, extras)
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
_FEEDBACK_NULL: Final = r'[{,]\s*"(?:' + "|".join(_FEEDBACK_KEYS) + r')"\s*:\s*null'


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
        line = _line_text(data)
    except pl.exceptions.PolarsError:
        return None  # invalid JSON, not an object, invalid UTF-8: judged line by line
    # Blank lines are skipped by both readers, but a blank line must be judged too.
    if frame.height != expected or line.len() != expected:
        return None
    if line.str.len_bytes().max() > MAX_RECORD_BYTES:
        return None
    if _unexplained(line, frame).any():
        return None
    return frame


def _line_text(data: bytes) -> pl.Series:
    """Each line of ``data`` as text, split in polars."""
    return pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        separator="\x00",
        quote_char=None,
        schema={"line": pl.String},
    ).get_column("line")


def _unexplained(line: pl.Series, frame: pl.DataFrame, extra: pl.Series | None = None) -> pl.Series:
    """Lines whose object keys are not all explained by what was read from them.

    The keys written in a line must equal the contract fields polars filled, plus the keys
    inside its ``attributes`` and ``feedback`` objects, plus contract fields sent as null, plus
    ``extra`` (keys outside the contract, counted by the caller). A line that fails this may
    hold a key polars skipped or a key sent twice (polars keeps one value).
    """
    found = line.str.count_matches(_KEY)
    nested = [frame.get_column(name) for name in _NESTED]
    inner = sum(column.str.count_matches(_KEY).fill_null(0) for column in nested)
    explained = frame.select(pl.sum_horizontal(pl.all().is_not_null())).to_series() + inner
    if extra is not None:
        explained = explained + extra
    off = found != explained
    if off.any():
        rows = off.arg_true()
        lines, nested_off = line.gather(rows), [column.gather(rows) for column in nested]
        nulls = lines.str.count_matches(_NULL_FIELD)
        for column in nested_off:  # nested keys named like fields are already counted
            nulls = nulls - column.str.count_matches(_NULL_FIELD).fill_null(0)
        by_nulls = found.gather(rows) == explained.gather(rows) + nulls
        by_nulls = by_nulls & _null_also_sent(lines, frame[rows]).not_()
        off = off.scatter(rows.filter(by_nulls), False)
    # Keys counted inside attributes or feedback must be keys of an object there, not text of
    # a string value that merely looks like JSON (which polars hands over unescaped).
    rows = (inner > 0).arg_true()
    stringy = line.gather(rows).str.contains(_STRING_NESTED)
    return off.scatter(rows.filter(stringy), True) if stringy.any() else off


def _null_also_sent(lines: pl.Series, frame: pl.DataFrame) -> pl.Series:
    """Lines where a field sent as null also holds a value: the key was sent twice."""
    twice = pl.Series([False] * lines.len())
    names = lines.str.extract_all(_NULL_FIELD).explode().str.extract(r'"([^"]+)"').drop_nulls()
    for name in names.unique().to_list():
        sent_null = lines.str.contains(r'[{,]\s*"' + name + r'"\s*:\s*null')
        twice = twice | (sent_null & frame.get_column(name).is_not_null())
    return twice


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


def _without_repeated_keys(
    frame: pl.DataFrame,
    body: bytes,
    lines: list[bytes],
    good: list[int],
    extras: dict[int, dict[str, object]],
) -> tuple[pl.DataFrame, list[int], dict[int, dict[str, object]], list[Reject]]:
    """The good lines less those that send a key twice, which become rejects.

    orjson and polars each keep one value of a repeated key, so a repeat is found the way the
    fast path proves keys: by counting, in polars. Only a line the count cannot explain is
    parsed again, in Python, to name the repeated key.
    """
    extra = pl.Series([0] * len(good), dtype=pl.UInt32)
    if extras:
        counts = pl.Series([_count_keys(e) for e in extras.values()], dtype=pl.UInt32)
        extra = extra.scatter(list(extras), counts)
    line = _line_text(body)
    suspects = (
        _unexplained(line, frame, extra).arg_true().to_list()
        if line.len() == len(good)
        else range(len(good))  # lines polars split otherwise: check each one
    )
    rejects = []
    dropped = []
    for row in suspects:
        number = good[row]
        repeated = _repeated_keys(lines[number - 1])
        if repeated:
            detail = (
                f"Key {', '.join(map(repr, repeated))} appears more than once in the record; "
                "which value is meant is unclear."
            )
            raw = lines[number - 1]
            rejects.append(Reject(number, "duplicate_key", detail, _decode(raw), len(raw)))
            dropped.append(row)
    if not dropped:
        return frame, good, extras, rejects
    keep = sorted(set(range(len(good))) - set(dropped))
    position = {row: new for new, row in enumerate(keep)}
    extras = {position[row]: e for row, e in extras.items() if row in position}
    return frame[keep], [good[row] for row in keep], extras, rejects


_CONTAINERS: Final = (dict, list)


def _count_keys(value: Any) -> int:
    """Keys of every object in a parsed JSON value."""
    if type(value) is dict:
        return len(value) + sum(_count_keys(v) for v in value.values() if type(v) in _CONTAINERS)
    return sum(_count_keys(v) for v in value if type(v) in _CONTAINERS)


class _Object(dict):  # type: ignore[type-arg]
    """A JSON object that remembers which of its keys were sent more than once."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    obj.repeated = []
    if len(obj) < len(pairs):
        obj.repeated = [k for k, n in Counter(k for k, _ in pairs).items() if n > 1]
    return obj


def _repeated_keys(line: bytes) -> list[str]:
    """Keys sent twice in one object of ``line``, as dotted paths.

    Inside ``attributes`` and ``feedback`` a repeated key is no loss: their text is stored as
    sent, so those are not listed.
    """
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, _Object):
            found.extend(path + key for key in value.repeated)
            for key, inner in value.items():
                walk(inner, f"{path}{key}.")
        elif type(value) is list:
            for inner in value:
                walk(inner, path)

    record = json.loads(line, object_pairs_hook=_object)
    found.extend(record.repeated)
    for key, value in record.items():
        if key not in _NESTED:
            walk(value, f"{key}.")
    return found


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
    parts = {
        column: feedback.str.json_path_match(f"$.{key}") for key, column in _FEEDBACK_KEYS.items()
    }
    rows = frame.get_column("feedback").is_not_null().arg_true()
    if rows.len():  # only rows with feedback pay for the check that the columns hold it all
        unheld = (
            frame[rows]
            .with_columns(_row=rows)
            .filter(_feedback_held(feedback, parts).not_())
            .select("_row", "feedback")
        )
        for row, text in unheld.iter_rows():
            extras[row] = {**extras.get(row, {}), "feedback": _feedback_value(text)}
    frame = frame.with_columns(
        *(pl.coalesce(pl.col(column), part).alias(column) for column, part in parts.items()),
        _index=pl.Series(good, dtype=pl.Int64),
    )
    if extras:
        frame = merge_into_attributes(frame, list(extras), list(extras.values()))
    return frame.select(RAW_SCHEMA.names())


def _feedback_held(feedback: pl.Expr, parts: dict[str, pl.Expr]) -> pl.Expr:
    """Whether the feedback columns hold the whole ``feedback`` object.

    They do when it is an object whose every key is one of the four, and no top-level
    feedback column says something else; anything more goes to ``attributes`` whole.
    """
    found = sum(part.is_not_null().cast(pl.Int32) for part in parts.values())
    keys = feedback.str.count_matches(_KEY)
    # A string that starts like an object ("{not json") has no keys: only "{}" is held by none.
    is_object = feedback.str.starts_with("{") & ((keys > 0) | (feedback == "{}"))
    held = is_object & (keys == found + feedback.str.count_matches(_FEEDBACK_NULL))
    for column, part in parts.items():
        held = held & (pl.col(column).is_null() | part.is_null() | (pl.col(column) == part))
    return held


def _feedback_value(text: str) -> object:
    """A ``feedback`` value as polars read it, back as JSON: objects and arrays as sent."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # a JSON string: polars hands over its content
    # As text, so a key sent twice in it stays; orjson would keep one.
    return orjson.Fragment(text) if type(value) in _CONTAINERS else value
