"""The SQL guard under attack: what must be refused, what must still work, row limit, timeout.

Every refused statement is tried through the library, the CLI (CliRunner) and one real
``python -m agentops_assets sql`` process; where it would write, the test checks afterwards
that nothing was written (a file that must not exist, a view that must still answer).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from agentops_assets.cli.main import main
from agentops_assets.storage.config import Paths
from agentops_assets.storage.sql import (
    QueryTimeoutError,
    ReadOnlyError,
    check_read_only,
    query,
    run_query,
)
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl

# Runs for minutes unless stopped: DuckDB cannot fold this sum away.
_SLOW = "SELECT sum(i * i) FROM range(100000000000) t(i)"


@pytest.fixture
def lake(paths: Paths) -> Paths:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(40)])
    ingest_landing(paths)
    return paths


def _writes(out: Path) -> list[str]:
    """Statements that would write or change the session; each must be refused."""
    return [
        # EXPLAIN ANALYZE runs the statement it explains.
        "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
        "EXPLAIN ANALYZE DROP VIEW agent_events",
        "EXPLAIN ANALYSE DROP VIEW agent_events",
        "EXPLAIN CREATE TABLE t AS SELECT 1",
        "EXPLAIN (ANALYZE, FORMAT json) DROP VIEW agent_events",
        "EXPLAIN ANALYZE (FORMAT json) CREATE VIEW v AS SELECT 1",
        "EXPLAIN /* x */ ANALYZE -- y\n DROP VIEW agent_events",
        # Token offsets count bytes: 25 two-byte letters once made the guard read 'SELECT 1'.
        f"EXPLAIN /* {'é' * 25} */ ANALYZE CREATE TABLE t AS SELECT 1",
        "explain analyze insert into agent_events select * from agent_events",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{out / 'explained.csv'}'",
        "SELECT 1; EXPLAIN ANALYZE DROP VIEW agent_events",
        "SELECT 1; DROP VIEW agent_events",
        # Files, databases, extensions.
        f"COPY (SELECT * FROM agent_events) TO '{out / 'leak.csv'}'",
        f"COPY agent_events TO '{out / 'leak.parquet'}' (FORMAT parquet)",
        f"EXPORT DATABASE '{out / 'export'}'",
        f"ATTACH '{out / 'other.duckdb'}' AS other",
        "DETACH memory",
        "USE memory",
        "INSTALL sqlite",
        "LOAD sqlite",
        "FORCE INSTALL httpfs",
        # Settings that would lift the guard.
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "RESET enable_external_access",
        "PRAGMA enable_profiling",
        "PRAGMA show_tables",
        "CALL pragma_version()",
        "CHECKPOINT",
        "VACUUM",
        "ANALYZE",
        # Catalog changes, in any form.
        "CREATE MACRO twice(a) AS a * 2",
        "CREATE TEMP TABLE t AS SELECT 1",
        "CREATE OR REPLACE VIEW agent_events AS SELECT 1 AS x",
        "CREATE SEQUENCE s",
        "CREATE TYPE mood AS ENUM ('a')",
        "DROP VIEW agent_events",
        "ALTER VIEW agent_events RENAME TO e",
        "INSERT INTO agent_events SELECT * FROM agent_events",
        "UPDATE agent_events SET cost_usd = 0",
        "DELETE FROM agent_events",
        "MERGE INTO agent_events USING agent_events AS s ON false WHEN MATCHED THEN DELETE",
        "BEGIN TRANSACTION",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "DEALLOCATE p",
        # PIVOT without its values runs a CREATE TYPE first.
        "PIVOT agent_events ON agent_type USING count(*)",
    ]


@pytest.mark.parametrize(
    "prefix",
    ["EXPLAIN", "EXPLAIN ANALYZE", "EXPLAIN (ANALYZE)", "EXPLAIN (ANALYZE, FORMAT json)"],
)
def test_no_comment_hides_what_an_explain_runs(prefix: str) -> None:
    con = duckdb.connect()
    writes = ["CREATE TABLE t AS SELECT 1", "DROP VIEW v", "COPY (SELECT 1) TO 'x.csv'"]
    fillers = [f"/* {letter * n} */" for letter in ("é", "€", "😀", "x") for n in range(40)]
    for write in writes:
        for filler in fillers:
            with pytest.raises(ReadOnlyError):
                check_read_only(con, f"{filler} {prefix} {filler} {write}")
            with pytest.raises(ReadOnlyError):
                check_read_only(con, f"{prefix} {filler} {write}")
    for filler in fillers:  # and reads stay allowed
        check_read_only(con, f"{prefix} {filler} SELECT '{filler}'")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("ATTACH 'x.db' AS x", "an ATTACH statement is refused"),
        ("INSERT INTO t VALUES (1)", "an INSERT statement is refused"),
        ("UPDATE t SET a = 1", "an UPDATE statement is refused"),
        ("DELETE FROM t", "a DELETE statement is refused"),
        ("EXPLAIN ANALYZE ALTER TABLE t ADD COLUMN b INT", "EXPLAIN of an ALTER statement"),
        ("EXPLAIN DROP TABLE t", "EXPLAIN of a DROP statement"),
    ],
)
def test_refusals_name_the_statement_with_the_right_article(sql: str, message: str) -> None:
    with pytest.raises(ReadOnlyError) as refused:
        check_read_only(duckdb.connect(), sql)
    assert message in str(refused.value)


def _files_written(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_every_write_is_refused_through_the_library(lake: Paths, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    let_through = []
    for statement in _writes(out):
        try:
            query(lake, statement)
        except ReadOnlyError as error:
            assert str(error).startswith("agentops sql is read-only"), str(error)
            continue
        except Exception as error:  # noqa: BLE001 - any other outcome is a hole in the guard
            let_through.append(f"{statement!r}: {type(error).__name__}")
            continue
        let_through.append(f"{statement!r}: ran")
    assert let_through == []
    assert _files_written(out) == []
    # The view a refused DROP aimed at still answers.
    assert query(lake, "SELECT count(*) FROM agent_events").item() == 40


@pytest.mark.parametrize(
    ("statement", "probe"),
    [
        ("EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "SELECT * FROM t"),
        ("EXPLAIN ANALYZE DROP VIEW agent_events", "SELECT count(*) FROM agent_events"),
        ("EXPLAIN ANALYZE CREATE MACRO m() AS 7", "SELECT m()"),
    ],
)
def test_a_refused_statement_changes_nothing_for_the_next_one(
    lake: Paths, statement: str, probe: str
) -> None:
    # Both in one query: if the first ran, the probe would see its effect.
    with pytest.raises(ReadOnlyError, match="EXPLAIN"):
        query(lake, f"{statement}; {probe}")


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        # A bare path is a replacement scan: off with external access, the name is unknown.
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/proc/self/environ')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_json('/etc/passwd')",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM parquet_metadata('/etc/passwd')",
    ],
)
def test_files_behind_the_lake_stay_closed(lake: Paths, statement: str) -> None:
    with pytest.raises(duckdb.Error, match="disabled by configuration|does not exist"):
        query(lake, statement)


def test_no_extension_is_fetched_or_loaded(lake: Paths, tmp_path: Path) -> None:
    # sqlite_scan lives in an extension: it must be neither downloaded nor loaded.
    # Before the fix DuckDB tried to download it ("...trying to automatically install...").
    with pytest.raises(duckdb.CatalogException, match='sqlite_scan" is not in the catalog'):
        query(lake, f"SELECT * FROM sqlite_scan('{tmp_path / 'x.db'}', 't')")
    assert not (tmp_path / "x.db").exists()


def test_no_environment_is_readable(lake: Paths) -> None:
    os.environ["AGENTOPS_SQL_PROBE"] = "s3cr3t"
    try:
        with pytest.raises(Exception, match="getenv"):
            query(lake, "SELECT getenv('AGENTOPS_SQL_PROBE')")
        settings = query(lake, "SELECT string_agg(value, ' ') FROM duckdb_settings()").item()
        assert "s3cr3t" not in settings
    finally:
        del os.environ["AGENTOPS_SQL_PROBE"]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1; SELECT 2", [(2,)]),
        ("SELECT 1;\n-- a comment\nSELECT 2;", [(2,)]),
        ("SELECT count(*) FROM agent_events; SELECT 3 AS n", [(3,)]),
        ("WITH x AS (SELECT count(*) AS n FROM agent_events) SELECT n FROM x", [(40,)]),
        ("FROM agent_events SELECT count(*)", [(40,)]),
        ("SELECT 'DROP VIEW agent_events; EXPLAIN ANALYZE CREATE TABLE t'", None),
        ("VALUES (1), (2)", [(1,), (2,)]),
        ("SELECT count(*) FROM query_table('agent_events')", [(40,)]),
        ("PIVOT agent_events ON agent_type IN ('FinanceAgent') USING count(*)", None),
        ("DESCRIBE agent_events", None),
        ("SHOW TABLES", None),
        ("SUMMARIZE agent_events", None),
        ("SELECT * FROM pragma_table_info('agent_events')", None),
        ("EXPLAIN SELECT * FROM agent_events", None),
        ("EXPLAIN ANALYZE SELECT count(*) FROM agent_events", None),
        ("EXPLAIN (FORMAT json) SELECT 1", None),
        ("EXPLAIN ANALYZE (FORMAT json) SELECT 1", None),
        ("EXPLAIN (ANALYZE, FORMAT json) SELECT 1", None),
        ("EXPLAIN (SELECT 1) UNION (SELECT 2)", None),
        ("EXPLAIN ANALYZE (SELECT 1)", None),
        ("EXPLAIN /* c */ ANALYZE -- c\n SELECT 1", None),
    ],
)
def test_reads_still_work(lake: Paths, sql: str, expected: list[tuple] | None) -> None:
    frame = query(lake, sql)
    assert frame.height >= 1
    if expected is not None:
        assert frame.rows() == expected
    first = run_query(lake, sql, limit=1)  # the limit wraps any read
    assert first.frame.columns == frame.columns and first.frame.height == 1
    assert first.truncated == (frame.height > 1)


@pytest.mark.parametrize(
    "sql",
    [
        "WITH x AS (CREATE TABLE t AS SELECT 1) SELECT * FROM x",
        "WITH x AS (DROP VIEW agent_events) SELECT 1",
        "SELECT * FROM query('DROP VIEW agent_events')",
        "SELECT * FROM query('SELECT 1; DROP VIEW agent_events')",
    ],
)
def test_writes_hidden_inside_a_select_do_not_get_through(lake: Paths, sql: str) -> None:
    with pytest.raises(duckdb.ParserException):
        query(lake, sql)
    assert query(lake, "SELECT count(*) FROM agent_events").item() == 40


def test_row_limit_keeps_the_first_rows_and_says_more_exist(lake: Paths) -> None:
    cut = run_query(lake, "SELECT * FROM agent_events ORDER BY event_id", limit=5)
    assert cut.frame.height == 5 and cut.truncated
    assert cut.frame["event_id"].to_list() == [f"ev-{n:08d}" for n in range(5)]
    exact = run_query(lake, "SELECT * FROM agent_events", limit=40)
    assert exact.frame.height == 40 and not exact.truncated
    whole = run_query(lake, "SELECT * FROM range(100000)", limit=None)
    assert whole.frame.height == 100_000 and not whole.truncated


def test_a_query_past_its_timeout_is_stopped(lake: Paths) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="stopped after 0.5 seconds"):
        query(lake, _SLOW, timeout=0.5)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("bad", [{"limit": -1}, {"timeout": 0}, {"timeout": -2.0}])
def test_bad_limits_are_refused(lake: Paths, bad: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        run_query(lake, "SELECT 1", **bad)


def test_cli_refuses_every_write_in_one_sentence(lake: Paths, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    runner = CliRunner()
    for statement in _writes(out):
        result = runner.invoke(main, ["sql", statement])
        assert result.exit_code == 1, (statement, result.output)
        assert "agentops sql is read-only" in result.output, (statement, result.output)
        assert "Traceback" not in result.output
    assert _files_written(out) == []


def test_cli_limit_and_timeout(lake: Paths) -> None:
    runner = CliRunner()
    default = runner.invoke(main, ["sql", "SELECT * FROM range(25000)", "--format", "csv"])
    assert default.exit_code == 0, default.output
    assert len(default.stdout.splitlines()) == 1 + 10_000
    assert "Showing the first 10,000 rows" in default.stderr
    every = runner.invoke(
        main, ["sql", "SELECT * FROM range(25000)", "--format", "csv", "--limit", "0"]
    )
    assert len(every.stdout.splitlines()) == 1 + 25_000 and every.stderr == ""
    table = runner.invoke(main, ["sql", "SELECT * FROM agent_events", "--limit", "3"])
    assert table.exit_code == 0 and "Showing the first 3 rows" in table.stderr
    slow = runner.invoke(main, ["sql", _SLOW, "--timeout", "0.5"])
    assert slow.exit_code == 1
    assert "stopped after 0.5 seconds" in slow.output and "--timeout" in slow.output
    assert "Traceback" not in slow.output
    negative = runner.invoke(main, ["sql", "SELECT 1", "--limit", "-1"])
    assert negative.exit_code == 2 and "Traceback" not in negative.output


def test_cli_multiple_selects_print_the_last_result(lake: Paths) -> None:
    result = CliRunner().invoke(main, ["sql", "SELECT 1 AS a; SELECT 2 AS b", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["b", "2"]


def test_a_real_process_refuses_and_writes_nothing(lake: Paths, tmp_path: Path) -> None:
    target = tmp_path / "written.csv"
    env = {**os.environ, "AGENTOPS_HOME": str(lake.home)}
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentops_assets",
            "sql",
            f"SELECT 1; EXPLAIN ANALYZE COPY (SELECT * FROM agent_events) TO '{target}'",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert refused.returncode == 1
    assert "read-only: EXPLAIN of a COPY statement is refused" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert not target.exists()
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentops_assets",
            "sql",
            "SELECT 1; SELECT count(*) AS n FROM agent_events",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["n", "40"]
