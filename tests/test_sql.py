"""SQL over the lake, through the library and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from agentops_assets.cli.main import _cell, main
from agentops_assets.storage.config import Paths
from agentops_assets.storage.sql import ReadOnlyError, query
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl


@pytest.fixture
def lake(paths: Paths) -> Paths:
    records = [event(n, agent_type="SupportAgent" if n % 2 else "FinanceAgent") for n in range(40)]
    write_jsonl(paths.landing / "a.jsonl", [*records, b"{oops"])
    ingest_landing(paths)
    return paths


def test_every_table_is_a_view_under_its_name(lake: Paths) -> None:
    frame = query(
        lake,
        "SELECT agent_type, count(*) AS n FROM agent_events GROUP BY 1 ORDER BY 1",
    )
    assert frame.rows() == [("FinanceAgent", 20), ("SupportAgent", 20)]
    assert query(lake, "SELECT count(*) FROM agent_events_quarantine").item() == 1
    assert query(lake, "SELECT sum(records) FROM ingested_files").item() == 41


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO agent_events SELECT * FROM agent_events",
        "DELETE FROM agent_events",
        "CREATE TABLE t AS SELECT 1",
        "COPY (SELECT 1) TO 'out.csv'",
        "SELECT 1; DROP VIEW agent_events",
        "ATTACH 'other.db'",
    ],
)
def test_statements_that_would_write_are_refused(lake: Paths, statement: str) -> None:
    with pytest.raises(ReadOnlyError, match="read-only"):
        query(lake, statement)


def test_reading_files_behind_the_lake_is_refused(lake: Paths, tmp_path) -> None:
    (tmp_path / "secret.csv").write_text("a\n1\n")
    with pytest.raises(Exception, match="disabled"):
        query(lake, f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')")


def test_cli_prints_table_csv_and_json(lake: Paths) -> None:
    runner = CliRunner()
    sql = "SELECT agent_type, count(*) AS n FROM agent_events GROUP BY 1 ORDER BY 1"
    table = runner.invoke(main, ["sql", sql])
    assert table.exit_code == 0, table.output
    assert "SupportAgent" in table.output and "20" in table.output
    csv = runner.invoke(main, ["sql", sql, "--format", "csv"])
    assert csv.output.splitlines() == ["agent_type,n", "FinanceAgent,20", "SupportAgent,20"]
    data = json.loads(runner.invoke(main, ["sql", sql, "--format", "json"]).output)
    assert data == [
        {"agent_type": "FinanceAgent", "n": 20},
        {"agent_type": "SupportAgent", "n": 20},
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM agent_events", "read-only: a DELETE statement is refused"),
        ("SELECT * FROM no_such_table", "Tables: agent_events, agent_events_quarantine"),
        ("SELEC 1", "syntax error"),
        ("", "empty"),
    ],
)
def test_cli_errors_are_one_clear_message_without_a_trace(
    lake: Paths, sql: str, message: str
) -> None:
    result = CliRunner().invoke(main, ["sql", sql])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_table_wider_than_the_terminal_prints_one_block_per_record(lake: Paths) -> None:
    sql = "SELECT * FROM agent_events ORDER BY event_id LIMIT 3"
    env = {**os.environ, "AGENTOPS_HOME": str(lake.home), "COLUMNS": "80"}
    shown = subprocess.run(
        [sys.executable, "-m", "agentops_assets", "sql", sql],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "--format csv" in shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert [line.split()[:2] for line in lines if line.startswith("record ")] == [
        ["record", "1"],
        ["record", "2"],
        ["record", "3"],
    ]
    values = {m[1]: m[2].strip() for m in map(re.compile(r"^(\w+):(.*)$").match, lines) if m}
    rows = query(lake, sql)
    assert rows.width > 20
    for name, value in rows.row(2, named=True).items():  # the last block
        start = "" if value is None else _cell(value)[:10]
        assert values[name].startswith(start), (name, values[name], start)
