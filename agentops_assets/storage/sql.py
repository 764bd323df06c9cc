"""SQL over the lake: every Delta table is a DuckDB view under its table name.

DuckDB's own ``delta_scan`` needs an extension download, so tables are registered as
polars lazy frames, which DuckDB scans with projection and filter pushdown. On object storage
polars reads the files (with the lake's storage options); DuckDB itself never opens a file
or a URL, so its sandbox below holds for an ``s3://`` lake as for a local one.

Only reads run. DuckDB's parser classifies each statement (text rules miss comments, case and
``EXPLAIN ANALYZE``, which runs what it explains); the session then has external access,
extension loading and configuration changes switched off, so a table function cannot reach a
file either. A row limit and a timeout bound what one query can cost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import polars as pl

from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

_READ_ONLY: frozenset[duckdb.StatementType] = frozenset({duckdb.StatementType.SELECT})
_HINTS: dict[duckdb.StatementType, str] = {
    duckdb.StatementType.PRAGMA: "; read a pragma with SELECT * FROM pragma_<name>(...)",
    # A PIVOT without its values first creates an ENUM type of them.
    duckdb.StatementType.MULTI: "; list the PIVOT values: PIVOT ... ON column IN (...)",
}
# Words that may stand between EXPLAIN and the statement it explains.
_EXPLAIN_WORDS = frozenset({"ANALYZE", "ANALYSE", "VERBOSE"})
# Applied after the tables are registered; the last line makes them final for the session.
_SANDBOX = (
    "SET enable_external_access = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET lock_configuration = true",
)


class SqlError(ValueError):
    """A query was refused or stopped."""


class ReadOnlyError(SqlError):
    """A statement that would write was refused."""


class QueryTimeoutError(SqlError):
    """A query ran past its time limit and was stopped."""


@dataclass(frozen=True)
class QueryResult:
    """The rows of a query's last statement, cut to the row limit."""

    frame: pl.DataFrame
    truncated: bool
    """True when the query returned more rows than the limit."""


def register_tables(con: duckdb.DuckDBPyConnection, paths: Paths) -> list[str]:
    """Register every Delta table of the lake on ``con``; returns the table names."""
    tables = lake.list_tables(paths)
    for name, uri in tables.items():
        con.register(name, lake.scan_existing(uri))
    return list(tables)


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> list[duckdb.Statement]:
    """The statements of ``query``, or ``ReadOnlyError`` unless every one only reads.

    A SELECT (with DESCRIBE, SHOW, SUMMARIZE, VALUES, FROM-first) reads; so does an EXPLAIN
    whose explained statement is a SELECT. Everything else is refused.

    Raises:
        ValueError: ``query`` holds no statement.
        ReadOnlyError: A statement would write, change a setting, or load something.
        duckdb.ParserException: ``query`` is not valid SQL.
    """
    statements = con.extract_statements(query)
    if not statements:
        raise ValueError("The query is empty; pass a SELECT statement.")
    for statement in statements:
        if statement.type is duckdb.StatementType.EXPLAIN:
            _check_explained(con, statement.query)
        elif statement.type not in _READ_ONLY:
            hint = _HINTS.get(statement.type, "")
            raise ReadOnlyError(
                f"agentops sql is read-only: {_kind(statement.type)} statement is refused; "
                f"use SELECT{hint}."
            )
    return statements


def _kind(kind: duckdb.StatementType) -> str:
    """A statement type's name with its article: "a DELETE", "an ATTACH"."""
    # Every type whose name starts with a vowel letter also starts with a vowel sound.
    article = "an" if kind.name[0] in "AEIOU" else "a"
    return f"{article} {kind.name}"


def _check_explained(con: duckdb.DuckDBPyConnection, text: str) -> None:
    readings = _explained(con, text)
    if not readings:
        raise ReadOnlyError(
            "agentops sql is read-only: the statement under this EXPLAIN cannot be told; "
            "explain a SELECT."
        )
    for inner in readings:
        if inner.type not in _READ_ONLY:
            raise ReadOnlyError(
                f"agentops sql is read-only: EXPLAIN of {_kind(inner.type)} statement is "
                "refused; explain a SELECT."
            )


def _explained(con: duckdb.DuckDBPyConnection, text: str) -> list[duckdb.Statement]:
    """The statement(s) an ``EXPLAIN [ANALYZE] [(options)] statement`` may explain.

    DuckDB's tokenizer finds where the statement starts; DuckDB's parser then reads it. A
    parenthesised group after EXPLAIN is either the options or the start of ``(SELECT ...)``,
    so every reading that parses as one statement is returned, and each must be read-only.
    """
    data = text.encode()  # token offsets count bytes, not characters
    spans = duckdb.tokenize(text)
    ends = [offset for offset, _ in spans[1:]] + [len(data)]
    tokens = [
        (index, data[offset:end].decode(errors="replace").strip())
        for index, ((offset, kind), end) in enumerate(zip(spans, ends, strict=True))
        if kind != duckdb.token_type.comment
    ]
    if not tokens or tokens[0][1].upper() != "EXPLAIN":
        return []
    at = 1
    while at < len(tokens) and tokens[at][1].upper() in _EXPLAIN_WORDS:
        at += 1
    starts = [at]
    if at < len(tokens) and tokens[at][1].startswith("("):
        depth = 0
        for close in range(at, len(tokens)):
            index, word = tokens[close]
            if spans[index][1] == duckdb.token_type.operator:
                depth += word.count("(") - word.count(")")
            if depth <= 0:
                starts.append(close + 1)
                break
    readings = []
    for start in starts:
        if start >= len(tokens):
            continue
        index = tokens[start][0]
        rest = data[spans[index][0] :].decode()
        # The rest must tokenize exactly as the tail it was cut from, or the cut is wrong.
        if [kind for _, kind in duckdb.tokenize(rest)] != [kind for _, kind in spans[index:]]:
            continue
        try:
            parsed = con.extract_statements(rest)
        except duckdb.Error:
            continue
        if len(parsed) == 1:
            readings.append(parsed[0])
    return readings


def run_query(
    paths: Paths, sql: str, *, limit: int | None = None, timeout: float | None = None
) -> QueryResult:
    """Run read-only ``sql`` over the lake; the last statement's rows, up to ``limit``.

    Args:
        paths: Where the lake is.
        sql: One or more statements separated by ``;``, each a read. Earlier statements run
            to their end (a ``setseed`` or a failing cast still counts); their rows are dropped.
        limit: Most rows to return; ``None`` returns every row. The limit is applied by
            DuckDB, so an ``ORDER BY`` becomes a top-N and a scan stops early.
        timeout: Seconds before the query is interrupted; ``None`` waits for ever.

    Returns:
        The rows, and whether the query had more than ``limit``.

    Raises:
        ValueError: ``limit`` or ``timeout`` is out of range, or ``sql`` is empty.
        ReadOnlyError: A statement would write (see :func:`check_read_only`).
        QueryTimeoutError: The query ran longer than ``timeout``.
        duckdb.Error: DuckDB refused the query (syntax, unknown table, a closed file...).
    """
    if limit is not None and limit < 0:
        raise ValueError(f"The row limit must be 0 or more, got {limit}.")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"The timeout must be more than 0 seconds, got {timeout}.")
    con = duckdb.connect(":memory:")
    try:
        register_tables(con, paths)
        statements = check_read_only(con, sql)
        for setting in _SANDBOX:
            con.execute(setting)
        with _deadline(con, timeout):
            for statement in statements[:-1]:
                con.execute(statement)
                con.complete()  # run to the end without keeping rows
            relation = con.sql(statements[-1])
            if relation is None:
                return QueryResult(pl.DataFrame(), truncated=False)
            frame = (relation if limit is None else relation.limit(limit + 1)).pl()
    finally:
        con.close()
    if limit is not None and frame.height > limit:
        return QueryResult(frame.head(limit), truncated=True)
    return QueryResult(frame, truncated=False)


def query(paths: Paths, sql: str, *, timeout: float | None = None) -> pl.DataFrame:
    """Run read-only ``sql`` over the lake and return every row of the last statement.

    See :func:`run_query` for the rules and the errors.
    """
    return run_query(paths, sql, timeout=timeout).frame


@contextmanager
def _deadline(con: duckdb.DuckDBPyConnection, seconds: float | None) -> Iterator[None]:
    """Interrupt ``con`` after ``seconds``; the interruption becomes ``QueryTimeoutError``."""
    if seconds is None:
        yield
        return
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        con.interrupt()

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        if not fired.is_set():
            raise
        raise QueryTimeoutError(
            f"The query was stopped after {seconds:g} seconds, its time limit; "
            "narrow it (WHERE, LIMIT) or allow more time."
        ) from None
    finally:
        timer.cancel()
        timer.join()  # a stop() under way ends before the connection is closed
