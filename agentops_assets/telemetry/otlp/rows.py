"""Mapped spans gathered into a frame of text columns, with rejects and ancestor inheritance."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from typing import Any, Final, TypeVar

import orjson
import polars as pl

from agentops_assets.telemetry.otlp.values import dumps, text
from agentops_assets.telemetry.parsed import MAX_RECORD_BYTES, ParsedRecords, Reject
from agentops_assets.telemetry.schema import FIELDS, RAW_SCHEMA

_FLUSH_ROWS: Final = 4096  # span tuples held before they are moved into column lists
_RAW_KEPT: Final = 65_536  # characters of an oversized span kept as its raw text
_T = TypeVar("_T")


class Rows:
    """The columns, rejects and record indices of one file, in file order."""

    def __init__(self) -> None:
        self.index = 0  # next record index
        self.requests = 0  # requests that hold resourceSpans
        self.indices: list[int] = []
        self.pending: list[tuple[Any, ...]] = []
        # Raw values per canonical field; "duration_ms" holds endTimeUnixNano until result().
        self.columns: dict[str, list[Any]] = {name: [] for name in FIELDS}
        self.rejects: list[Reject] = []

    def reject(self, reason: str, detail: str, raw: Any, *, as_text: bool = False) -> None:
        """Record ``raw`` (a JSON value, or text with ``as_text``) as a reject; takes an index."""
        raw_text = raw if as_text else dumps(raw)
        self.rejects.append(Reject(self.index, reason, detail, raw_text, len(raw_text.encode())))
        self.index += 1

    def add(self, row: tuple[Any, ...]) -> None:
        """A mapped span; takes an index."""
        self.indices.append(self.index)
        self.index += 1
        self.pending.append(row)
        if len(self.pending) >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            for column, values in zip(
                self.columns.values(), zip(*self.pending, strict=True), strict=True
            ):
                column.extend(values)
            self.pending.clear()

    def result(self, raw: Callable[[int], str], *, inherit: bool) -> ParsedRecords:
        """The records; ``raw(index)`` gives back the text of any record."""
        self.flush()
        if inherit:
            _inherit(self.columns)
        records = _frame(self.indices, self.columns)
        records = self._without_oversized(records, raw)
        return ParsedRecords(
            records=records, rejects=self.rejects, raw=raw, records_read=self.index
        )

    def _without_oversized(self, records: pl.DataFrame, raw: Callable[[int], str]) -> pl.DataFrame:
        """Records less spans over ``MAX_RECORD_BYTES`` of text, which become rejects.

        A span is measured by the text it would store (every column, attributes included):
        cheap in polars, and within a few bytes of its JSON size. ``records`` holds that size
        as its last column, ``_size`` (see :func:`_frame`); it is dropped here.
        """
        size = records.get_column("_size")
        records = records.drop("_size")
        if not len(size) or size.max() <= MAX_RECORD_BYTES:  # type: ignore[operator]
            return records
        large = pl.DataFrame([size, records.get_column("_index")]).filter(
            pl.col("_size") > MAX_RECORD_BYTES
        )
        for size_bytes, index in large.iter_rows():
            detail = (
                f"The span has {size_bytes:,} bytes of text; records are limited to "
                f"{MAX_RECORD_BYTES:,} bytes."
            )
            raw_text = raw(index)[:_RAW_KEPT]
            self.rejects.append(Reject(index, "record_too_large", detail, raw_text, size_bytes))
        return records.filter(pl.col("_index").is_in(large.get_column("_index")).not_())


def _frame(indices: list[int], columns: dict[str, list[Any]]) -> pl.DataFrame:
    """The ``RAW_SCHEMA`` frame of the columns, duration_ms computed, plus ``_size``.

    Columns with no value at all (most of them, for most files) are made as null literals in
    the one query that also computes duration_ms and the text size of each record: a
    Series per empty column costs more than the rest of the frame.
    """
    series = [pl.Series("_index", indices, dtype=pl.Int64)]
    empty = []
    for name, values in columns.items():
        if not values or (values[0] is None and values.count(None) == len(values)):
            empty.append(_NULL[name])
        else:
            series.append(_text_column(name, values))
    return (
        pl.DataFrame(series)
        .lazy()
        .with_columns(empty)
        .with_columns(_DURATION)
        .select(*_RAW_NAMES, _SIZE)
        .collect()
    )


def _duration_ms(*, start: pl.Expr, end: pl.Expr) -> pl.Expr:
    """(end - start) / 1e6 as text, for epoch-nanosecond times; null when either is not one."""
    nanos = end.cast(pl.Int64, strict=False) - start.cast(pl.Int64, strict=False)
    return (nanos / 1e6).cast(pl.String).alias("duration_ms")


# The expressions of _frame, made once: building them costs more than some files' parse.
_NULL: Final = {name: pl.lit(None, dtype=pl.String).alias(name) for name in FIELDS}
_DURATION: Final = _duration_ms(start=pl.col("ts"), end=pl.col("duration_ms"))
_SIZE: Final = pl.sum_horizontal(pl.col(pl.String).str.len_bytes()).alias("_size")
_RAW_NAMES: Final = RAW_SCHEMA.names()


def without_gc(read: Callable[[], _T]) -> _T:
    """``read()`` with cyclic garbage collection off.

    A parsed file is millions of young containers that all stay alive until the end: cyclic
    GC passes over them find nothing and cost more than the parse.
    """
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        return read()
    finally:
        if gc_enabled:
            gc.enable()


def whole_file(data: bytes, reason: str, detail: str, *, binary: bool = False) -> ParsedRecords:
    """One reject for the whole file; binary bytes are kept with backslash escapes."""
    raw_text = data.decode("utf-8", "backslashreplace" if binary else "replace")
    return ParsedRecords(
        records=pl.DataFrame(schema=RAW_SCHEMA),
        rejects=[Reject(0, reason, detail, raw_text, len(data))],
        raw=lambda index: raw_text if index == 0 else "",
        records_read=1,
    )


def _text_column(name: str, values: list[Any]) -> pl.Series:
    """A column of raw values, not all None, as text, converted by polars where they allow it."""
    first = next(v for v in values if v is not None)
    # A value that is not text makes the build as text fail: numbers go straight to the next.
    if type(first) is str:
        with contextlib.suppress(TypeError):
            return pl.Series(name, values, dtype=pl.String)
    with contextlib.suppress(TypeError, pl.exceptions.PolarsError, OverflowError):
        typed = pl.Series(name, values)  # all ints, all floats or all bools: cast in bulk
        if typed.dtype.is_numeric() or typed.dtype == pl.Boolean:
            return typed.cast(pl.String)
    return pl.Series(name, [text(v) for v in values], dtype=pl.String)


def _inherit(columns: dict[str, list[Any]]) -> None:
    """Fill agent identity and session of spans that lack them from their nearest ancestor.

    In OpenTelemetry GenAI traces only the ``invoke_agent`` span names the agent; the LLM and
    tool spans under it do not. Only ancestors in the same file are looked at. A filled row
    names the ancestor span in ``agentops.agent.inherited_from`` (or ``.session.``).
    """
    event_ids, parents = columns["event_id"], columns["parent_id"]
    agent_ids, sessions = columns["agent_id"], columns["session_id"]
    need_agent = [i for i, v in enumerate(agent_ids) if v is None and parents[i] is not None]
    need_session = [i for i, v in enumerate(sessions) if v is None and parents[i] is not None]
    if not need_agent and not need_session:
        return
    position = {e: i for i, e in enumerate(event_ids)}
    attributes = columns["attributes"]
    agent_types, tiers = columns["agent_type"], columns["agent_tier"]

    def ancestor(i: int, column: list[Any]) -> int | None:
        for _ in range(256):  # depth bound; also ends parent cycles
            j = position.get(parents[i])
            if j is None or j == i:
                return None
            if column[j] is not None:
                return j
            i = j
        return None

    get = position.get
    for i in need_agent:
        j = get(parents[i])  # the parent itself, usually: ancestor's first step
        if j is None or j == i or agent_ids[j] is None:
            j = ancestor(i, agent_ids)
        if j is not None:
            agent_ids[i], agent_types[i], tiers[i] = agent_ids[j], agent_types[j], tiers[j]
            attributes[i] = _with_key(attributes[i], "agentops.agent.inherited_from", event_ids[j])
    for i in need_session:
        j = get(parents[i])
        if j is None or j == i or sessions[j] is None:
            j = ancestor(i, sessions)
        if j is not None:
            sessions[i] = sessions[j]
            attributes[i] = _with_key(
                attributes[i], "agentops.session.inherited_from", event_ids[j]
            )


_KEY_JSON: Final = {
    key: orjson.dumps(key).decode() + ":"
    for key in ("agentops.agent.inherited_from", "agentops.session.inherited_from")
}


def _with_key(obj_json: str, key: str, value: str) -> str:
    """The JSON object ``obj_json`` with ``key: value`` added last."""
    member = _KEY_JSON[key] + orjson.dumps(value).decode()
    return "{" + member + "}" if obj_json == "{}" else obj_json[:-1] + "," + member + "}"
