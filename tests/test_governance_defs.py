"""The governance assets in Dagster: `agentops run` judges each day, the checks name violations
and a broken chain, and the sensor re-judges when the policies change."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner

from agentops_assets.cli.main import main
from agentops_assets.governance.ledger import AuditLedger
from agentops_assets.governance.tampering import edit, forge
from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths, environment

DAYS = 3


@pytest.fixture(scope="module")
def run_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    """Three days of a small fleet with a rogue agent, materialized by `agentops run`."""
    root = tmp_path_factory.mktemp("governance-defs")
    start = datetime.now(UTC).date() - timedelta(days=DAYS + 1)
    with environment(AGENTOPS_HOME=str(root), AGENTOPS_POLICIES=None):
        paths = Paths.from_env()
        simulate(
            paths.landing,
            paths.simulator,
            agents=8,
            days=DAYS,
            seed=11,
            start=start,
            cycles_per_agent_day=30,
            incidents=["rogue_agent"],
        )
        result = CliRunner().invoke(main, ["run"])
        assert result.exit_code == 0, result.output
        yield paths


def _rogue(paths: Paths) -> dict:
    return json.loads((paths.simulator / "incidents.json").read_text())[0]


def _checks(paths: Paths, name: str) -> dict[str, dg.AssetCheckEvaluation]:
    """The latest evaluation of check ``name`` per partition of its run."""
    found: dict[str, dg.AssetCheckEvaluation] = {}
    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        records = instance.get_event_records(
            dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=1000
        )
        for record in sorted(records, key=lambda r: r.storage_id):
            event = record.event_log_entry
            evaluation = event.dagster_event.event_specific_data
            if evaluation.check_name != name:
                continue
            run = instance.get_run_by_id(event.run_id)
            found[run.tags.get("dagster/partition", "")] = evaluation
    return found


def test_each_day_is_judged_in_its_own_materialization(run_home: Paths) -> None:
    decisions = pl.read_delta(run_home.table_uri("policy_decisions"))
    per_day = dict(decisions.group_by("day").len().iter_rows())
    assert len(per_day) == DAYS
    with dg.DagsterInstance.from_config(str(run_home.dagster_home)) as instance:
        records = instance.fetch_materializations(
            dg.AssetKey("policy_decisions"), limit=100
        ).records
    latest = {r.asset_materialization.partition: r.asset_materialization for r in records}
    assert {datetime.fromisoformat(p).date() for p in latest} == set(per_day)
    for partition, materialization in latest.items():
        day = datetime.fromisoformat(partition).date()
        assert materialization.metadata["decisions"].value == per_day[day]
        zones = sum(materialization.metadata[z].value for z in ("green", "yellow", "red"))
        assert zones == per_day[day]


def test_the_violation_check_fails_on_the_rogue_day_naming_agent_tool_and_count(
    run_home: Paths,
) -> None:
    incident = _rogue(run_home)
    rogue, day = incident["agent_ids"][0], incident["day"]
    violations = pl.read_delta(run_home.table_uri("capability_violations"))
    assert set(violations["agent_id"]) == {rogue}
    assert {str(d) for d in violations["day"]} == {day}
    evaluations = _checks(run_home, "no_capability_violations")
    assert set(evaluations) == {
        str(d) for d in pl.read_delta(run_home.table_uri("policy_decisions"))["day"].unique()
    }
    failed = evaluations[day]
    assert not failed.passed
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    for row in violations.group_by("action").len().iter_rows(named=True):
        assert f"{rogue} ({incident['agent_type']}) called {row['action']} {row['len']} time" in (
            failed.description
        )
    assert all(e.passed for partition, e in evaluations.items() if partition != day)


def test_red_decisions_wait_in_the_queue_and_the_ledger_head_is_published(
    run_home: Paths,
) -> None:
    queue = pl.read_delta(run_home.table_uri("review_queue"))
    violations = pl.read_delta(run_home.table_uri("capability_violations"))
    # Every violating call was denied (red) and waits for a human.
    assert set(violations["event_id"]) <= set(queue["event_id"])
    assert set(queue.filter(pl.col("zone") == "red")["event_id"]) == set(violations["event_id"])
    ledger = AuditLedger(run_home)
    report = ledger.verify()
    assert report.ok and report.head is not None
    assert ledger.anchors()[-1].hash == report.head.hash
    # Every asset that appends to the ledger publishes the head it left: the newest says the
    # head of the table (the control asset runs last and appends autonomy changes).
    with dg.DagsterInstance.from_config(str(run_home.dagster_home)) as instance:
        records = [
            record
            for key in ("audit_ledger", "autonomy_state")
            for record in instance.fetch_materializations(dg.AssetKey(key), limit=100).records
        ]
    newest = max(records, key=lambda r: r.storage_id).asset_materialization
    assert newest.metadata["head_hash"].value == report.head.hash
    assert newest.metadata["head_seq"].value == report.head.seq
    assert all(e.passed for e in _checks(run_home, "audit_chain_intact").values())


def test_a_tampered_ledger_fails_the_chain_check_at_the_edited_entry(
    run_home: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(run_home.home, tmp_path / "home", ignore=shutil.ignore_patterns("dagster"))
    monkeypatch.setenv("AGENTOPS_HOME", str(tmp_path / "home"))
    copy = Paths.from_env()
    middle = AuditLedger(copy).verify().checked // 2
    forge(AuditLedger(copy), edit, middle)
    from agentops_assets.definitions import defs

    day = str(_rogue(run_home)["day"])
    result = defs.resolve_job_def("governance_job").execute_in_process(
        partition_key=day,
        raise_on_error=False,
        asset_selection=[dg.AssetKey("audit_ledger")],
    )
    evaluation = next(
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "audit_chain_intact"
    )
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert f"fails at entry {middle} (edited)" in evaluation.description


def _lake(paths: Paths):
    from agentops_assets.defs.resources import LakeResource

    return LakeResource(home=str(paths.home))


def test_a_policy_change_is_recorded_and_the_judged_days_requested_again(
    run_home: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentops_assets.defs.governance.sensors import policy_change_sensor

    copy = tmp_path / "home"
    shutil.copytree(run_home.home, copy, ignore=shutil.ignore_patterns("dagster"))
    monkeypatch.setenv("AGENTOPS_HOME", str(copy))
    paths = Paths.from_env()
    ledger = AuditLedger(paths)
    before = ledger.entries(kind="policy_bundle_change").height
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"lake": _lake(paths)})
        first = policy_change_sensor(context)
        assert isinstance(first, dg.SkipReason)  # the revision in force is already recorded
        revision = context.cursor
        assert ledger.entries(kind="policy_bundle_change").height == before

        folder = tmp_path / "policies"
        folder.mkdir()
        shipped = Path(__file__).parents[1] / "policies" / "agentops.rego"
        (folder / "agentops.rego").write_text(
            shipped.read_text().replace("max_override_rate := 0.2", "max_override_rate := 0.1")
        )
        monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
        context = dg.build_sensor_context(
            instance=instance, cursor=revision, resources={"lake": _lake(paths)}
        )
        requests = policy_change_sensor(context)
    days = sorted(
        str(d) for d in pl.read_delta(paths.table_uri("policy_decisions"))["day"].unique()
    )
    assert sorted(r.partition_key for r in requests) == days
    changes = ledger.entries(kind="policy_bundle_change")
    assert changes.height == before + 1
    payload = json.loads(changes["payload"][-1])
    assert payload["previous"] == revision
    assert payload["changed"] == ["agentops.rego"]
    assert context.cursor == payload["revision"] != revision
    assert ledger.verify().ok


def test_the_control_group_runs_once_after_the_days_and_publishes_the_file(
    run_home: Paths,
) -> None:
    from agentops_assets.control.output import control_path

    states = pl.read_delta(run_home.table_uri("autonomy_state"))
    agents = states.filter(pl.col("agent_id").is_not_null())
    events = pl.read_delta(run_home.table_uri("agent_events"))
    assert set(agents["agent_id"]) == set(events["agent_id"])
    assert states["day"].unique().to_list() == [datetime.now(UTC).date()]
    document = json.loads(control_path(run_home).read_text())
    assert set(document["agents"]) == set(agents["agent_id"])
    for agent_id, entry in document["agents"].items():
        state = agents.filter(pl.col("agent_id") == agent_id)["state"][0]
        assert entry["state"] == state
        assert entry["allowed_tools"] or state == "frozen"
    with dg.DagsterInstance.from_config(str(run_home.dagster_home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="control_job"))
    assert len(runs) == 1 and runs[0].is_success
    assert list(_checks(run_home, "no_frozen_agents").values())[-1].passed
