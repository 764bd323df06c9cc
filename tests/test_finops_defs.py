"""The FinOps Dagster layer: graph, partitioned runs with their checks, schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster_duckdb import DuckDBResource

from agentops_assets.cli.runner import finops_days
from agentops_assets.definitions import defs
from agentops_assets.defs.finops import metadata
from agentops_assets.defs.finops.schedules import finops_daily_schedule, partition_for_tick
from agentops_assets.defs.resources import LakeResource
from agentops_assets.finops.compliance import COMPLIANCE_SCHEMA
from agentops_assets.finops.metrics import DAILY_METRICS_SCHEMA
from agentops_assets.finops.roi import ROI_SCHEMA
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


def _records(value: dg.TableMetadataValue) -> list[dict[str, object]]:
    return [record.data for record in value.records]


def _types(value: dg.TableMetadataValue) -> dict[str, str]:
    return {column.name: column.type for column in value.schema.columns}


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
    # Nothing to list: empty tables that keep their columns.
    assert _records(checks["all_models_priced"].metadata["models"]) == []
    assert _types(checks["all_models_priced"].metadata["models"])["calls"] == "int"
    assert _records(checks["budget_within_caps"].metadata["findings"]) == []
    day = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.partition == "2026-11-19" and "day" in event.materialization.metadata
    }
    # That day's own calls: 10 gpt-4o calls of 1,200 input and 300 output tokens.
    (model,) = _records(day["event_costs"]["top_models"])
    assert model == {
        "provider_id": "openai",
        "model": "gpt-4o",
        "cost_source": "genai-prices",
        "calls": 10,
        "spend": pytest.approx(10 * (1200 * 2.5 + 300 * 10.0) / 1e6),
    }
    # Every cycle starts on 2026-11-18 (its first event): no spender on the 19th, six over
    # the range, which the range's output lists.
    assert _records(day["agent_daily_metrics"]["top_spenders"]) == []
    assert _types(day["agent_daily_metrics"]["top_spenders"])["cost_usd"] == "float"
    (spenders,) = [
        event.materialization.metadata["top_spenders"]
        for event in result.get_asset_materialization_events()
        if "range" in event.materialization.metadata
        and event.partition == "2026-11-19"
        and event.asset_key.to_user_string() == "agent_daily_metrics"
    ]
    assert _records(spenders) == [
        {
            "agent_id": "finance-agent-01",
            "agent_type": "FinanceAgent",
            "cycles": 6,
            "cost_usd": pytest.approx(0.18),
            "per_success": None,  # no successful decision to divide by
        }
    ]
    (budget,) = _records(day["budget_compliance"]["latest_day"])
    assert (budget["status"], budget["cap_usd"]) == ("ok", 100.0)
    assert budget["pct_of_cap"] == pytest.approx(0.06 / 100)


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
    findings = check.metadata["findings"]
    assert _types(findings) == {
        "day": "string",
        "budget_id": "string",
        "period": "string",
        "spend_usd": "float",
        "cap_usd": "float",
        "status": "string",
    }
    rows = _records(findings)
    assert {row["day"] for row in rows} == {"2026-11-18", "2026-11-19", "2026-11-20"}
    assert all(row["status"] == "breach" and row["cap_usd"] == 0.01 for row in rows)
    assert all(row["spend_usd"] == pytest.approx(0.06) for row in rows)


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
    assert _records(check.metadata["models"]) == [
        {
            "provider": "acme",
            "model": "acme-reasoner-9",
            "calls": 3,
            "reason": "Model 'acme-reasoner-9' of provider 'acme' is in neither genai-prices "
            "nor policies/pricing.yaml.",
        }
    ]


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


def test_metadata_tables_of_empty_frames_keep_their_columns() -> None:
    """A day with nothing to list shows empty tables with their columns, not an error."""
    roi = metadata.agent_type_roi(pl.DataFrame(schema=ROI_SCHEMA))
    assert list(roi) == ["roi_by_agent_type"]  # no month-to-date figures to plot
    assert _records(roi["roi_by_agent_type"]) == []
    assert _types(roi["roi_by_agent_type"])["roi"] == "float"
    daily = metadata.agent_daily_metrics(pl.DataFrame(schema=DAILY_METRICS_SCHEMA))
    assert _records(daily["top_spenders"]) == []
    compliance = metadata.budget_compliance(pl.DataFrame(schema=COMPLIANCE_SCHEMA))
    assert _records(compliance["findings"]) == [] and _records(compliance["latest_day"]) == []
    assert compliance["breaches"].value == 0


def test_metadata_tables_hold_typed_values_the_ui_can_read() -> None:
    frame = pl.DataFrame(
        {
            "day": [date(2026, 11, 19), None],
            "calls": [3, None],
            "usd": [0.123456789, float("nan")],
            "over": [float("inf"), 1.0],
            "late": [True, False],
        }
    )
    columns = [
        dg.TableColumn("day"),
        dg.TableColumn("calls", "int"),
        dg.TableColumn("usd", "float"),
        dg.TableColumn("over", "float"),
        dg.TableColumn("late", "bool"),
    ]
    value = metadata.table(frame, columns)
    assert list(value.schema.columns) == columns
    assert _records(value) == [
        {"day": "2026-11-19", "calls": 3, "usd": 0.1235, "over": None, "late": True},
        {"day": None, "calls": None, "usd": None, "over": 1.0, "late": False},
    ]
