"""Chaos drills end to end on a real home: the fault goes into a scratch copy through the real
pipeline, the live tables stay as they were, and the outcome lands in chaos_drills."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from agentops_assets.cli.main import main
from agentops_assets.control.chaos import CHAOS_DRILLS, SCENARIOS
from agentops_assets.simulator import simulate
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths, environment

DAYS = 3


def drilled_home(root: Path, *, days: int, seed: int) -> Iterator[Paths]:
    """``days`` days of an 8-agent fleet without incidents ending yesterday, run through
    `agentops run`, as the home drills copy."""
    start = datetime.now(UTC).date() - timedelta(days=days)
    with environment(AGENTOPS_HOME=str(root), AGENTOPS_POLICIES=None):
        paths = Paths.from_env()
        simulate(
            paths.landing, paths.simulator, agents=8, days=days, seed=seed, start=start,
            cycles_per_agent_day=30, incidents=[],
        )  # fmt: skip
        result = CliRunner().invoke(main, ["run"])
        assert result.exit_code == 0, result.output
        yield paths


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    """Three days of a small fleet: enough for every drill but drift's."""
    yield from drilled_home(tmp_path_factory.mktemp("chaos"), days=DAYS, seed=3)


def _versions(paths: Paths) -> dict[str, int]:
    return {
        name: DeltaTable(uri).version()
        for name, uri in lake.list_tables(paths).items()
        if name != CHAOS_DRILLS
    }


def _drill(paths: Paths, *args: str):
    return CliRunner().invoke(main, ["chaos", *args], env={"AGENTOPS_HOME": str(paths.home)})


def test_the_scenario_names_are_the_contract() -> None:
    assert list(SCENARIOS) == [
        "broken_tool_api", "provider_outage", "corrupted_context", "contradictory_memory",
        "runaway_cost", "rogue_agent",
    ]  # fmt: skip
    listed = CliRunner().invoke(main, ["chaos", "list"]).output
    assert all(name in listed for name in SCENARIOS)


@pytest.mark.parametrize(
    ("scenario", "detected_by"),
    [
        ("rogue_agent", "capability_violations"),
        ("runaway_cost", "budget_compliance"),
        ("provider_outage", "autonomy_state (failover route)"),
        ("contradictory_memory", "coordination_findings (memory_conflict)"),
    ],
)
def test_a_drill_reacts_on_a_copy_and_leaves_the_live_tables_alone(
    home: Paths, scenario: str, detected_by: str
) -> None:
    before = _versions(home)
    anchors = (home.home / "audit" / "anchors.jsonl").read_bytes()
    result = _drill(home, "run", scenario)
    assert result.exit_code == 0, result.output
    assert "reacted as expected" in result.output
    assert _versions(home) == before  # the live lake did not change ...
    assert (home.home / "audit" / "anchors.jsonl").read_bytes() == anchors  # ... nor its ledger
    drills = pl.read_delta(home.table_uri(CHAOS_DRILLS)).filter(pl.col("scenario") == scenario)
    row = drills.row(-1, named=True)
    assert row["passed"] and row["detected_by"] == detected_by
    assert 0 < row["seconds_to_react"] < 600
    assert not list(Path(home.landing).glob("chaos-*"))  # nothing landed in the live home


def test_a_rogue_drill_names_the_state_change_alerts_and_ledger(home: Paths) -> None:
    result = _drill(home, "run", "rogue_agent", "--seed", "1")
    assert result.exit_code == 0, result.output
    row = pl.read_delta(home.table_uri(CHAOS_DRILLS)).sort("finished_at").row(-1, named=True)
    assert row["state_change"].endswith("sandboxed")
    assert row["alerts"] >= 1 and row["ledger_entries"] >= 9  # a red decision per rogue call
    assert "calls outside the registry" in row["detail"]


def test_a_drill_without_the_expected_reaction_exits_1(home: Paths, tmp_path: Path) -> None:
    # Policies that no longer sandbox an agent for capability violations or rogue anomalies:
    # the rogue agent is found, but the platform does not react as a drill expects.
    lax = tmp_path / "policies"
    lax.mkdir()
    (lax / "autonomy.yaml").write_text(
        "rules:\n"
        "  - name: daily_budget_breach\n"
        "    source: budget\n"
        "    scope: agent_type\n"
        "    severity: [breach]\n"
        "    periods: [day]\n"
        "    state: throttled\n"
        "    quiet_days: 1\n"
    )
    result = CliRunner().invoke(
        main,
        ["chaos", "run", "rogue_agent"],
        env={"AGENTOPS_HOME": str(home.home), "AGENTOPS_POLICIES": str(lax)},
    )
    assert result.exit_code == 1, result.output
    assert "NOT as expected" in result.output
    row = pl.read_delta(home.table_uri(CHAOS_DRILLS)).sort("finished_at").row(-1, named=True)
    assert (row["scenario"], row["passed"]) == ("rogue_agent", False)
    assert not row["state_change"].endswith("sandboxed")


def test_a_drill_on_an_empty_home_is_one_sentence(tmp_path: Path) -> None:
    empty = Paths(home=tmp_path / "empty", lake_uri=str(tmp_path / "empty" / "lake"))
    empty.home.mkdir()
    result = _drill(empty, "run", "rogue_agent")
    assert result.exit_code == 1
    assert "no telemetry to replay" in result.output and "Traceback" not in result.output


def test_a_drill_never_pages_the_live_sinks(home: Paths, tmp_path: Path) -> None:
    # The live policies route every alert to a webhook; a drill that alerts must not call it.
    import http.server
    import shutil
    import threading

    calls: list[bytes] = []

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the handler's name)
            calls.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    policies = tmp_path / "policies"
    shutil.copytree(Path(__file__).parents[1] / "policies", policies)
    (policies / "alerts.yaml").write_text(
        "sinks:\n  pager:\n    kind: webhook\n    url_env: CHAOS_TEST_PAGER_URL\n"
        "routes:\n  - sources: [capability_violation, drift_finding, anomaly, budget]\n"
        "    sinks: [pager]\n"
    )
    live_alerts = home.home / "alerts"
    before = sorted(p.name for p in live_alerts.rglob("*")) if live_alerts.exists() else []
    try:
        result = CliRunner().invoke(
            main,
            ["chaos", "run", "rogue_agent"],
            env={
                "AGENTOPS_HOME": str(home.home),
                "AGENTOPS_POLICIES": str(policies),
                "CHAOS_TEST_PAGER_URL": f"http://127.0.0.1:{server.server_port}/page",
            },
        )
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    row = pl.read_delta(home.table_uri(CHAOS_DRILLS)).sort("finished_at").row(-1, named=True)
    assert row["alerts"] >= 1  # the drill alerted, into its copy ...
    assert calls == []  # ... and nobody was paged
    after = sorted(p.name for p in live_alerts.rglob("*")) if live_alerts.exists() else []
    assert after == before
