"""The FinOps Dagster layer: graph, partitioned runs with their checks, schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from agentops_assets.cli.runner import finops_days
from agentops_assets.definitions import defs
from agentops_assets.defs.finops.schedules import finops_daily_schedule, partition_for_tick
from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl

FINOPS_TABLES = {
    "event_costs",
    "reasoning_cycles",
    "agent_daily_metrics",
    "agent_type_roi",
    "budget_compliance",
}


def _run(paths: Paths, first: str, last: str) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("finops_job")
    return job.execute_in_process(
        resources={
            "lake": LakeResource(home=str(paths.home)),
            "duckdb": DuckDBResource(database=":memory:"),
        },
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        raise_on_error=False,
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
    return folder


def _landing(paths: Paths, **overrides: object) -> None:
    records = [event(n) for n in range(30)]  # 2026-11-18 .. 2026-11-20, gpt-4o
    records += [event(100 + n, **overrides) for n in range(3)] if overrides else []
    write_jsonl(paths.landing / "a.jsonl", records)
    ingest_landing(paths)


def test_the_graph_has_the_finops_tables_checks_and_schedules() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys >= FINOPS_TABLES
    assert {"all_models_priced", "budget_within_caps"} <= {k.name for k in graph.asset_check_keys}
    assert defs.resolve_schedule_def("finops_hourly_schedule").job_name == "finops_job"
    assert defs.resolve_schedule_def("finops_daily_schedule").job_name == "finops_job"
    for key in FINOPS_TABLES:
        node = graph.get(dg.AssetKey(key))
        assert node.partitions_def is not None and node.group_name == "finops"


def test_schedules_refresh_today_hourly_and_yesterday_once_whole() -> None:
    tick = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)
    assert partition_for_tick(tick, whole_day=False) == "2026-11-25"
    assert partition_for_tick(tick, whole_day=True) == "2026-11-24"
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    request = finops_daily_schedule(context)
    assert request.partition_key == "2026-11-24" and "2026-11-25T00:30" in request.run_key


def test_a_range_run_materializes_every_day_and_passes_its_checks(
    paths: Paths, policies: Path
) -> None:
    (policies / "budgets.yaml").write_text(
        "budgets:\n  - agent_type: FinanceAgent\n    daily_usd: 100\n"
    )
    _landing(paths)
    result = _run(paths, "2026-11-18", "2026-11-20")
    assert result.success
    days = {
        (event.asset_key.to_user_string(), event.partition)
        for event in result.get_asset_materialization_events()
    }
    assert {("budget_compliance", f"2026-11-{d}") for d in (18, 19, 20)} <= days
    checks = _checks(result)
    assert checks["all_models_priced"].passed and checks["budget_within_caps"].passed


def test_budget_within_caps_fails_on_a_breach_naming_type_and_amounts(
    paths: Paths, policies: Path
) -> None:
    (policies / "budgets.yaml").write_text(
        "budgets:\n  - agent_type: FinanceAgent\n    daily_usd: 0.01\n"
    )
    _landing(paths)
    result = _run(paths, "2026-11-18", "2026-11-20")
    check = _checks(result)["budget_within_caps"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "FinanceAgent" in check.description and "$0.01" in check.description
    assert check.metadata["breaches"].value == 3


def test_budget_within_caps_warns_at_the_warning_level(paths: Paths, policies: Path) -> None:
    _landing(paths)
    spend = 10 * (1200 * 2.5 + 300 * 10.0) / 1e6  # one day: 10 gpt-4o calls at list price
    (policies / "budgets.yaml").write_text(
        f"budgets:\n  - agent_type: FinanceAgent\n    daily_usd: {spend / 0.9:.6f}\n"
        "    warn_at: 0.8\n"
    )
    result = _run(paths, "2026-11-19", "2026-11-19")
    check = _checks(result)["budget_within_caps"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["warnings"].value == 1


def test_all_models_priced_fails_naming_the_unknown_model(paths: Paths, policies: Path) -> None:
    _landing(paths, provider="acme", model="acme-reasoner-9", ts="2026-11-19T10:00:00Z")
    result = _run(paths, "2026-11-19", "2026-11-19")
    check = _checks(result)["all_models_priced"]
    assert not check.passed
    assert "acme-reasoner-9" in check.description
    assert check.metadata["unpriced_calls"].value == 3


def test_an_invalid_budget_file_fails_the_run_naming_the_line(paths: Paths, policies: Path) -> None:
    (policies / "budgets.yaml").write_text(
        "budgets:\n  - agent_type: FinanceAgent\n    daily_usd: -5\n"
    )
    _landing(paths)
    result = _run(paths, "2026-11-19", "2026-11-19")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert description.endswith(
        "budgets.yaml, line 3: 'daily_usd' input should be greater than 0, got -5."
    )


def test_finops_days_span_the_telemetry(paths: Paths) -> None:
    assert finops_days(paths) == []
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(10)])
    ingest_landing(paths)
    assert finops_days(paths) == [(date(2026, 11, 18), date(2026, 11, 20))]
