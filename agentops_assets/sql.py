"""SQL over the lake: every Delta table is a DuckDB view under its table name.

DuckDB's own ``delta_scan`` needs an extension download, so tables are registered as
polars lazy frames, which DuckDB scans with projection and filter pushdown.
"""

from __future__ import annotations

import duckdb
import polars as pl

from agentops_assets import lake
from agentops_assets.config import Paths

_READ_ONLY: frozenset[duckdb.StatementType] = frozenset(
    {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
)


class ReadOnlyError(ValueError):
    """A statement that would write was refused."""


def register_tables(con: duckdb.DuckDBPyConnection, paths: Paths) -> list[str]:
    """Register every Delta table of the lake on ``con``; returns the table names."""
    tables = lake.list_tables(paths)
    for name, uri in tables.items():
        con.register(name, pl.scan_delta(uri))
    return list(tables)


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise ``ReadOnlyError`` unless every statement in ``query`` only reads."""
    statements = con.extract_statements(query)
    if not statements:
        raise ValueError("The query is empty; pass a SELECT statement.")
    for statement in statements:
        if statement.type not in _READ_ONLY:
            kind = statement.type.name
            raise ReadOnlyError(
                f"agentops sql is read-only: a {kind} statement is refused; use SELECT."
            )


def query(paths: Paths, sql: str) -> pl.DataFrame:
    """Run read-only ``sql`` over the lake and return the last statement's result."""
    con = duckdb.connect(":memory:")
    try:
        register_tables(con, paths)
        check_read_only(con, sql)
        # Reads of registered frames still work; files and attachments are off.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        statements = con.extract_statements(sql)
        for statement in statements[:-1]:
            con.execute(statement)
        relation = con.sql(statements[-1].query)
        return relation.pl() if relation is not None else pl.DataFrame()
    finally:
        con.close()
