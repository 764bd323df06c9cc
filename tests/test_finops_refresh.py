"""FinOps refresh on real Delta tables: idempotent, incremental equals full, the CLI report."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from agentops_assets.cli.main import main
from agentops_assets.finops import refresh
from agentops_assets.finops.tables import (
    AGENT_DAILY_METRICS,
    AGENT_TYPE_ROI,
    BUDGET_COMPLIANCE,
    EVENT_COSTS,
    REASONING_CYCLES,
)
from agentops_assets.simulator import simulate
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing

# Four days across a month boundary, so month-to-date figures restart inside the range.
FIRST, LAST = date(2026, 10, 30), date(2026, 11, 2)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
TABLES = (EVENT_COSTS, REASONING_CYCLES, AGENT_DAILY_METRICS, AGENT_TYPE_ROI, BUDGET_COMPLIANCE)
SORT = {
    EVENT_COSTS: ["event_id"],
    REASONING_CYCLES: ["trace_id"],
    AGENT_DAILY_METRICS: ["day", "agent_id"],
    AGENT_TYPE_ROI: ["day", "agent_type", "period"],
    BUDGET_COMPLIANCE: ["day", "budget_id", "period"],
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated fleet, ingested once; tests work on copies of it."""
    home = tmp_path_factory.mktemp("fleet")
    paths = Paths.from_env(home)
    simulate(
        paths.landing, paths.simulator, agents=8, days=4, seed=5, start=FIRST,
        fmt="jsonl", cycles_per_agent_day=25,
    )  # fmt: skip
    ingest_landing(paths)
    return home


@pytest.fixture
def home(fleet: Path, paths: Paths) -> Paths:
    shutil.copytree(fleet, paths.home)
    return paths


def _read(paths: Paths, table: str) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(table)).sort(SORT[table])


def test_replace_range_rewrites_only_its_days(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    days = [date(2026, 11, d) for d in (1, 2, 3)]
    lake.replace_range(
        uri, pl.DataFrame({"day": days, "x": [1, 2, 3]}), column="day", first=days[0], last=days[2]
    )
    lake.replace_range(
        uri, pl.DataFrame({"day": [days[1]], "x": [20]}), column="day", first=days[1], last=days[1]
    )
    assert pl.read_delta(uri).sort("day")["x"].to_list() == [1, 20, 3]
    with pytest.raises(ValueError, match="outside"):
        lake.replace_range(
            uri, pl.DataFrame({"day": [days[0]], "x": [0]}), column="day", first=days[1],
            last=days[2],
        )  # fmt: skip


def test_refresh_twice_changes_nothing(home: Paths) -> None:
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    first = {table: _read(home, table) for table in TABLES}
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    for table in TABLES:
        assert_frame_equal(_read(home, table), first[table], rel_tol=1e-9)
    assert first[REASONING_CYCLES].height > 500
    assert set(first[REASONING_CYCLES]["day"]) == set(refresh.days_between(FIRST, LAST))


def test_one_day_refresh_equals_the_full_refresh_of_that_day(home: Paths) -> None:
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    full = {table: _read(home, table) for table in TABLES}
    day = date(2026, 11, 1)
    refresh.refresh_all(home, day, day, now=NOW)
    for table in TABLES:
        column = "event_date" if table == EVENT_COSTS else "day"
        # Sums of the same floats in another order may differ in the last digit.
        assert_frame_equal(_read(home, table), full[table], rel_tol=1e-9)
        assert full[table].filter(pl.col(column) == day).height > 0, table


def test_costs_add_up_across_tables(home: Paths) -> None:
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    cycles = _read(home, REASONING_CYCLES)
    daily = _read(home, AGENT_DAILY_METRICS)
    assert daily["cost_usd"].sum() == pytest.approx(cycles["cost_usd"].sum())
    assert daily["cycles"].sum() == cycles.height
    costs = _read(home, EVENT_COSTS)
    assert costs["cost_usd"].null_count() == 0  # every simulated model has a price
    assert costs["cost_usd"].sum() > 0
    roi = _read(home, AGENT_TYPE_ROI)
    month = roi.filter((pl.col("day") == LAST) & (pl.col("period") == "month"))
    november = daily.filter(pl.col("day") >= date(2026, 11, 1))
    assert month["cost_usd"].sum() == pytest.approx(november["cost_usd"].sum())


def test_budgets_come_from_the_policies_folder(home: Paths, monkeypatch, tmp_path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "budgets.yaml").write_text("budgets:\n  - agent_type: '*'\n    daily_usd: 0.01\n")
    monkeypatch.setenv("AGENTOPS_POLICIES", str(policies))
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    compliance = _read(home, BUDGET_COMPLIANCE)
    assert set(compliance["status"]) == {"breach"}
    types = pl.read_delta(home.table_uri(REASONING_CYCLES))["agent_type"].unique()
    assert compliance.filter(pl.col("day") == LAST)["agent_type"].n_unique() == types.len()


def test_finops_report_prints_types_spenders_and_findings(home: Paths) -> None:
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    result = CliRunner().invoke(main, ["finops", "report", "--period", "month"])
    assert result.exit_code == 0, result.output
    for expected in (
        "Spend against budget",
        "Value and ROI",
        "Top 10 spenders",
        "FinanceAgent",
        "November 2026",
    ):
        assert expected in result.output
    result = CliRunner().invoke(main, ["finops", "report", "--date", "2026-10-31"])
    assert result.exit_code == 0, result.output
    assert "2026-10-31" in result.output


def test_finops_report_errors_are_one_sentence(paths: Paths, fleet: Path) -> None:
    result = CliRunner().invoke(main, ["finops", "report"])
    assert result.exit_code == 1
    assert "agentops run" in result.output and "Traceback" not in result.output
    shutil.copytree(fleet, paths.home, dirs_exist_ok=True)
    refresh.refresh_all(paths, FIRST, LAST, now=NOW)
    result = CliRunner().invoke(main, ["finops", "report", "--date", "2020-01-01"])
    assert result.exit_code == 1
    assert "cover 2026-10-30 .. 2026-11-02" in result.output
    result = CliRunner().invoke(main, ["finops", "report", "--period", "year"])
    assert result.exit_code == 2 and "'year' is not one of" in result.output


def test_sql_users_find_every_finops_table(home: Paths) -> None:
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    for table in TABLES:
        result = CliRunner().invoke(
            main, ["sql", f"SELECT count(*) AS n FROM {table}", "--format", "csv"]
        )
        assert result.exit_code == 0, result.output
        assert int(result.output.splitlines()[-1]) == _read(home, table).height
