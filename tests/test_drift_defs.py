"""The drift assets in Dagster: `agentops run` materializes them per day, the UI sees each day's
own figures, and the checks name what drifted."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner

from agentops_assets.cli.main import main
from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths

DAYS = 12


@pytest.fixture(scope="module")
def run_home(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """A fleet of 12 days ending three days ago, a confidence drift at its end, `agentops run`."""
    root = tmp_path_factory.mktemp("drift-defs")
    start = datetime.now(UTC).date() - timedelta(days=DAYS + 2)
    saved = {name: os.environ.get(name) for name in ("AGENTOPS_HOME", "DAGSTER_HOME")}
    os.environ["AGENTOPS_HOME"] = str(root)
    try:
        paths = Paths.from_env()
        simulate(
            paths.landing,
            paths.simulator,
            agents=14,
            days=DAYS,
            seed=5,
            start=start,
            cycles_per_agent_day=50,
            incidents=["confidence_drift"],
        )
        result = CliRunner().invoke(main, ["run"])
        assert result.exit_code == 0, result.output
        assert "daily_job" in result.output and f"{DAYS} daily runs" in result.output
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return paths


def _incident(paths: Paths) -> dict:
    return json.loads((paths.simulator / "incidents.json").read_text())[0]


def test_each_day_has_its_own_drift_materialization(run_home: Paths) -> None:
    incident = _incident(run_home)
    drift_day = date.fromisoformat(incident["day"])
    findings = pl.read_delta(run_home.table_uri("drift_findings"))
    per_day = dict(findings.group_by("day").len().iter_rows())
    with dg.DagsterInstance.from_config(str(run_home.dagster_home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("drift_findings"), limit=100).records
        baselines = instance.fetch_materializations(
            dg.AssetKey("behavior_baselines"), limit=100
        ).records
    latest: dict[str, dg.AssetMaterialization] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        materialization = record.asset_materialization
        latest[materialization.partition] = materialization
    assert len(latest) == DAYS
    for partition, materialization in latest.items():
        shown = materialization.metadata["findings"].value
        assert shown == per_day.get(date.fromisoformat(partition), 0), partition
    assert (
        latest[incident["day"]].metadata["findings"].value > 0
        or latest[(drift_day + timedelta(days=1)).isoformat()].metadata["findings"].value > 0
    )
    # The per-metric figures the UI plots differ from day to day.
    confidence = {
        r.asset_materialization.partition: r.asset_materialization.metadata.get(
            "confidence_current"
        )
        for r in baselines
    }
    values = {v.value for v in confidence.values() if v is not None}
    assert len(values) > DAYS // 2


def test_no_critical_drift_fails_on_the_drift_and_passes_before_it(run_home: Paths) -> None:
    incident = _incident(run_home)
    evaluations = {}
    with dg.DagsterInstance.from_config(str(run_home.dagster_home)) as instance:
        for run in instance.get_runs():
            day = run.tags.get("dagster/partition")
            logs = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            for entry in logs:
                evaluation = entry.dagster_event.event_specific_data
                if day and evaluation.check_name == "no_critical_drift":
                    evaluations[day] = evaluation
    assert len(evaluations) == DAYS
    failed = {day: e for day, e in evaluations.items() if not e.passed}
    assert failed, "the injected drift failed no check"
    assert min(failed) >= incident["day"]
    assert all(e.passed for day, e in evaluations.items() if day < incident["day"])
    worst = max(failed.values(), key=lambda e: e.severity == dg.AssetCheckSeverity.ERROR)
    assert incident["agent_type"] in worst.description and "confidence" in worst.description
