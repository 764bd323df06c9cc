"""`agentops control` on a real home: status, a supervisor's override, a release, mistakes; and
the findings sensor that re-evaluates when findings land."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner, Result

from agentops_assets.cli import control as cli_control
from agentops_assets.cli.main import main
from agentops_assets.control.output import control_path
from agentops_assets.control.refresh import refresh_autonomy
from agentops_assets.governance.capabilities import VIOLATION_SCHEMA
from agentops_assets.governance.ledger import AuditLedger
from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl

TODAY = datetime.now(UTC).date()


@pytest.fixture
def home(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """Two FinanceAgents and an OpsAgent seen today; finance-agent-01 broke the registry."""
    monkeypatch.delenv("AGENTOPS_POLICIES", raising=False)
    monkeypatch.setattr(cli_control.console, "width", 200)
    ts = f"{TODAY.isoformat()}T08:00:00Z"
    records = [
        event(1, ts=ts),
        event(2, ts=ts, agent_id="finance-agent-02"),
        event(3, ts=ts, agent_id="ops-agent-01", agent_type="OpsAgent"),
    ]
    write_jsonl(paths.landing / "today.jsonl", records)
    ingest_landing(paths)
    _violation(paths, TODAY)
    refresh_autonomy(paths)
    return paths


def _violation(paths: Paths, day: date) -> None:
    row = (day, f"ev-{day}", "tr-1", "finance-agent-01", "FinanceAgent", "iam.create_key", "r")
    frame = pl.DataFrame([row], schema=VIOLATION_SCHEMA, orient="row")
    lake.append(paths.table_uri(CAPABILITY_VIOLATIONS), frame, partition_by=["day"])


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["control", *args])


def _state(paths: Paths, agent_id: str) -> str:
    document = json.loads(control_path(paths).read_text())
    return document["agents"][agent_id]["state"]


def test_status_lists_the_restricted_and_counts_the_rest(home: Paths) -> None:
    result = _run("status")
    assert result.exit_code == 0, result.output
    assert "2 normal, 1 sandboxed (of 3 agents)" in result.output
    assert "finance-agent-01" in result.output and "rule capability_violation" in result.output
    assert "ops-agent-01" not in result.output  # normal agents are counted, not listed
    assert "ops-agent-01" in _run("status", "--all").output


def test_set_then_release_change_the_state_file_history_and_ledger(home: Paths) -> None:
    result = _run("set", "ops-agent-01", "frozen", "--reason", "bulk deletes", "--by", "maria")
    assert result.exit_code == 0, result.output
    assert "ops-agent-01: normal -> frozen (frozen set by maria: bulk deletes)" in result.output
    assert _state(home, "ops-agent-01") == "frozen"

    result = _run("release", "finance-agent-01", "--reason", "key revoked", "--by", "ana")
    assert result.exit_code == 0, result.output
    assert _state(home, "finance-agent-01") == "normal"
    assert _state(home, "ops-agent-01") == "frozen"  # someone else's override stays

    entries = AuditLedger(home).entries(kind="autonomy_change")
    actors = dict(zip(entries["subject"], entries["actor"], strict=True))
    assert actors["ops-agent-01"] == "maria"
    assert actors["finance-agent-01"] == "ana"  # its last change: the release
    assert AuditLedger(home).verify().ok


def test_a_type_override_with_an_end_reaches_its_agents(home: Paths) -> None:
    until = datetime(TODAY.year + 1, 1, 1).strftime("%Y-%m-%d")
    result = _run(
        "set", "FinanceAgent", "human_only", "--reason", "quarter close", "--until", until,
        "--by", "maria",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _state(home, "finance-agent-02") == "human_only"
    status = _run("status", "FinanceAgent").output
    assert "FinanceAgent (type)" in status and until in status


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["set", "nobody-01", "frozen", "--reason", "x"], "neither an agent nor an agent type"),
        (["set", "ops-agent-01", "paused", "--reason", "x"], "'paused' is not one of"),
        (["set", "ops-agent-01", "frozen", "--reason", " "], "the reason is empty"),
        (["set", "ops-agent-01", "frozen", "--reason", "x", "--until", "2020-01-01"],
         "is not in the future"),
        (["release", "ops-agent-01"], "Missing option '--reason'"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_sentence_and_changes_nothing(
    home: Paths, args: list[str], says: str
) -> None:
    before = AuditLedger(home).head()
    result = _run(*args)
    assert result.exit_code in (1, 2)
    assert says in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert AuditLedger(home).head() == before


def test_status_before_any_evaluation_says_what_to_run(paths: Paths) -> None:
    result = _run("status")
    assert result.exit_code == 1
    assert "run `agentops run`" in result.output


def test_the_findings_sensor_asks_once_per_new_finding() -> None:
    from agentops_assets.defs.control.sensors import findings_sensor

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert isinstance(findings_sensor(context), dg.SkipReason)
        instance.report_runless_asset_event(dg.AssetMaterialization("capability_violations"))
        request = findings_sensor(context)
        assert isinstance(request, dg.RunRequest)
        context = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        assert isinstance(findings_sensor(context), dg.SkipReason)
        instance.report_runless_asset_event(dg.AssetMaterialization("drift_findings"))
        again = findings_sensor(context)
        assert isinstance(again, dg.RunRequest) and again.run_key != request.run_key
