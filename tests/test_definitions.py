"""The Dagster code location: graph, ingestion assets with checks, the landing sensor."""

from __future__ import annotations

import os

import dagster as dg
import polars as pl
from click.testing import CliRunner
from dagster_duckdb import DuckDBResource

from agentops_assets.cli.main import main
from agentops_assets.definitions import defs
from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.telemetry.assets import telemetry_ingestion
from agentops_assets.defs.telemetry.checks import event_ids_unique, records_accounted_for
from agentops_assets.defs.telemetry.sensors import landing_sensor
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl


def _resources(paths: Paths) -> dict[str, object]:
    return {
        "lake": LakeResource(home=str(paths.home)),
        "duckdb": DuckDBResource(database=":memory:"),
    }


def test_definitions_load_with_the_contract_names() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"agent_events", "agent_events_quarantine", "ingested_files"} <= keys
    checks = {key.name for key in graph.asset_check_keys}
    assert {"event_ids_unique", "records_accounted_for"} <= checks
    assert defs.resolve_sensor_def("landing_sensor").job_name == "ingest_job"
    assert defs.resolve_job_def("ingest_job") is not None


def test_materializing_ingestion_runs_checks_and_reports_metadata(paths: Paths) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(25)] + [b"{bad"])
    result = dg.materialize(
        [telemetry_ingestion, event_ids_unique, records_accounted_for],
        resources=_resources(paths),
    )
    assert result.success
    metadata = {
        m.asset_key.to_user_string(): m.metadata
        for m in result.asset_materializations_for_node("telemetry_ingestion")
    }
    assert metadata["agent_events"]["new_rows"].value == 25
    assert metadata["agent_events_quarantine"]["quarantined_rows"].value == 1
    by_reason = metadata["agent_events_quarantine"]["by_reason"].value
    assert [(c.name, c.type) for c in by_reason.schema.columns] == [
        ("reason", "string"),
        ("records", "int"),
    ]
    assert [r.data for r in by_reason.records] == [{"reason": "invalid_json", "records": 1}]
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name: e.passed for e in evaluations} == {
        "event_ids_unique": True,
        "records_accounted_for": True,
    }


def test_uniqueness_check_fails_and_names_the_duplicates(paths: Paths) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(5)])
    ingest_landing(paths)
    # A writer that bypassed ingestion appended an event twice.
    twice = pl.read_delta(paths.table_uri("agent_events")).head(1)
    twice.write_delta(paths.table_uri("agent_events"), mode="append")
    result = dg.materialize(
        [telemetry_ingestion, event_ids_unique],
        resources=_resources(paths),
        selection=dg.AssetSelection.checks(event_ids_unique),
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["duplicate_rows"].value == 1
    assert f"{twice['event_id'].item()} x2" in evaluation.metadata["examples"].value


def test_landing_sensor_requests_each_set_of_new_files_once(paths: Paths) -> None:
    resources = {"lake": LakeResource(home=str(paths.home))}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(landing_sensor(context), dg.SkipReason)

        write_jsonl(paths.landing / "a.jsonl", [event(1)])
        first = landing_sensor(context)
        assert isinstance(first, dg.RunRequest) and first.run_key
        context = dg.build_sensor_context(
            instance=instance, resources=resources, cursor=context.cursor
        )
        assert isinstance(landing_sensor(context), dg.SkipReason)  # re-tick: nothing new

        write_jsonl(paths.landing / "b.jsonl", [event(2)])
        second = landing_sensor(context)
        assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key

        ingest_landing(paths)
        context = dg.build_sensor_context(
            instance=instance, resources=resources, cursor=context.cursor
        )
        skip = landing_sensor(context)
        assert isinstance(skip, dg.SkipReason) and "No landing files" in skip.skip_message


def test_agentops_run_records_the_run_in_the_local_dagster_home(paths: Paths) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(10)])
    previous = os.environ.get("DAGSTER_HOME")
    try:
        result = CliRunner().invoke(main, ["run"])
        assert result.exit_code == 0, result.output
        assert "agent_events" in result.output and "passed" in result.output
        with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
            runs = instance.get_runs()
        # Ingestion and memory first, then FinOps, drift and governance: one run per day with
        # telemetry; then the autonomy states, once, from those days' findings.
        ordered = list(reversed(runs))
        assert [r.job_name for r in ordered] == (
            ["__ASSET_JOB"] + ["daily_job"] * 3 + ["control_job"]
        )
        days = [r.tags["dagster/partition"] for r in ordered[1:4]]
        assert days == ["2026-11-18", "2026-11-19", "2026-11-20"]
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    assert pl.read_delta(paths.table_uri("agent_events")).height == 10
