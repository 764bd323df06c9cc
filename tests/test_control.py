"""Autonomy control on real Delta tables: the shipped rules, hysteresis, supervisors'
overrides and releases, ``refresh_autonomy`` (tables, history, ledger) and the control file.

Evidence rows are written straight into ``drift_findings``, ``behavior_anomalies``,
``capability_violations`` and ``budget_compliance`` in their own schemas, so each expected
state follows from rows the test wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, time, timedelta
from itertools import count

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from agentops_assets.control import ControlError, Override, Release, evaluate, refresh_autonomy
from agentops_assets.control import overrides as control_overrides
from agentops_assets.control.evidence import read_evidence
from agentops_assets.control.output import control_path, document, write_atomically
from agentops_assets.control.refresh import SYSTEM_ACTOR, autonomy_policy
from agentops_assets.control.tables import AUTONOMY_HISTORY, AUTONOMY_STATE
from agentops_assets.drift.tables import (
    ANOMALIES_SCHEMA,
    BEHAVIOR_ANOMALIES,
    DRIFT_FINDINGS,
    FINDINGS_SCHEMA,
)
from agentops_assets.finops.compliance import COMPLIANCE_SCHEMA
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.capabilities import VIOLATION_SCHEMA, load_registry
from agentops_assets.governance.ledger import AuditLedger
from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl

DAY = date(2026, 11, 20)
FIN = "FinanceAgent"
OPS = "OpsAgent"
AGENTS = [(FIN, "fa-1"), (FIN, "fa-2"), (OPS, "ops-1")]
_ids = count(1)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), UTC)


def _append(paths: Paths, table: str, schema: dict, row: dict) -> None:
    frame = pl.DataFrame([row], schema=schema)
    lake.append(paths.table_uri(table), frame.cast(dict(schema)), partition_by=["day"])


def drift(
    paths: Paths,
    day: date,
    agent_type: str,
    *,
    agent_id: str | None = None,
    metric: str = "confidence",
    severity: str = "critical",
) -> str:
    finding_id = f"df-{next(_ids)}"
    _append(
        paths,
        DRIFT_FINDINGS,
        FINDINGS_SCHEMA,
        {
            "day": day, "agent_type": agent_type, "agent_id": agent_id, "metric": metric,
            "baseline_value": 0.9, "current_value": 0.5, "change_pct": -44.4, "test": "ks",
            "statistic": 0.6, "p_value": 0.0001, "effect_size": 1.2, "severity": severity,
            "detail": f"{metric} fell", "finding_id": finding_id,
        },
    )  # fmt: skip
    return finding_id


def anomaly(
    paths: Paths, day: date, agent_type: str, agent_id: str, *, unseen: list[str] | None
) -> str:
    trace_id = f"tr-{next(_ids)}"
    _append(
        paths,
        BEHAVIOR_ANOMALIES,
        ANOMALIES_SCHEMA,
        {
            "day": day, "trace_id": trace_id, "agent_id": agent_id, "agent_type": agent_type,
            "started_at": at(day, 9), "score": 9.5, "rank": 1, "reasons": "34 tool calls",
            "unseen_actions": unseen,
        },
    )  # fmt: skip
    return trace_id


def violation(
    paths: Paths, day: date, agent_type: str, agent_id: str, action: str = "iam.create_key"
) -> str:
    event_id = f"ev-v{next(_ids)}"
    _append(
        paths,
        CAPABILITY_VIOLATIONS,
        dict(VIOLATION_SCHEMA),
        {
            "day": day, "event_id": event_id, "trace_id": f"tr-{event_id}", "agent_id": agent_id,
            "agent_type": agent_type, "action": action, "rule": f"{action} is not a tool",
        },
    )  # fmt: skip
    return event_id


def budget(
    paths: Paths, day: date, agent_type: str, *, period: str = "day", status: str = "breach"
) -> str:
    budget_id = f"b-{agent_type}-{period}"
    _append(
        paths,
        BUDGET_COMPLIANCE,
        COMPLIANCE_SCHEMA,
        {
            "day": day, "budget_id": budget_id, "agent_type": agent_type, "provider": None,
            "model": None, "period": period, "period_start": day, "period_end": day,
            "spend_usd": 120.0, "cap_usd": 100.0, "warn_at": 0.8, "pct_of_cap": 120.0,
            "burn_rate_usd_per_day": 120.0, "forecast_usd": 120.0, "status": status,
            "detail": "over", "evaluated_at": at(day, 23),
        },
    )  # fmt: skip
    return f"{budget_id}:{period}:{day}"


def states_on(paths: Paths, day: date, **options) -> pl.DataFrame:
    """What the shipped policy says of ``day``, from the evidence refresh would read."""
    evidence = read_evidence(paths, day - timedelta(days=70), day)
    options.setdefault("agents", AGENTS)
    return evaluate(evidence, autonomy_policy(paths), day, **options)


def row(states: pl.DataFrame, agent_type: str, agent_id: str | None = None) -> dict:
    found = states.filter(
        (pl.col("agent_type") == agent_type)
        & (pl.col("agent_id").is_null() if agent_id is None else pl.col("agent_id") == agent_id)
    )
    assert found.height == 1, found
    return found.row(0, named=True)


def state(states: pl.DataFrame, agent_type: str, agent_id: str | None = None) -> str:
    return row(states, agent_type, agent_id)["state"]


# 1. The shipped rules, one by one.


def test_type_wide_critical_confidence_drift_makes_the_type_and_its_agents_human_only(paths):
    finding = drift(paths, DAY, FIN)
    states = states_on(paths, DAY)
    fin = row(states, FIN)
    assert fin["state"] == "human_only"
    assert fin["rule"] == "critical_confidence_drift"
    assert fin["evidence_ids"] == [finding]
    assert (fin["since"], fin["until"]) == (DAY, DAY + timedelta(days=3))
    for agent_id in ("fa-1", "fa-2"):
        agent = row(states, FIN, agent_id)
        assert agent["state"] == "human_only"
        assert agent["rule"] == "agent_type"
        assert FIN in agent["reason"]
        assert agent["evidence_ids"] == [finding]
    assert state(states, OPS) == state(states, OPS, "ops-1") == "normal"


@pytest.mark.parametrize(
    ("metric", "severity"),
    [("confidence", "warning"), ("latency_ms", "critical")],
    ids=["warning", "other-metric"],
)
def test_drift_the_rule_does_not_read_restricts_nothing(paths, metric, severity):
    drift(paths, DAY, FIN, metric=metric, severity=severity)
    states = states_on(paths, DAY)
    assert set(states["state"]) == {"normal"}


def test_critical_drift_of_one_agent_is_not_type_wide(paths):
    drift(paths, DAY, FIN, agent_id="fa-1")
    assert set(states_on(paths, DAY)["state"]) == {"normal"}


def test_anomaly_with_an_unseen_action_sandboxes_that_agent_only(paths):
    trace = anomaly(paths, DAY, FIN, "fa-1", unseen=["iam.create_key"])
    anomaly(paths, DAY, FIN, "fa-2", unseen=[])  # a warning: nothing never seen
    anomaly(paths, DAY, OPS, "ops-1", unseen=None)
    states = states_on(paths, DAY)
    fa1 = row(states, FIN, "fa-1")
    assert (fa1["state"], fa1["rule"], fa1["evidence_ids"]) == (
        "sandboxed",
        "rogue_behaviour",
        [trace],
    )
    assert state(states, FIN, "fa-2") == "normal"
    assert state(states, OPS, "ops-1") == "normal"
    assert state(states, FIN) == "normal"  # an agent's evidence does not reach its type


def test_a_capability_violation_sandboxes_the_agent(paths):
    event_id = violation(paths, DAY, FIN, "fa-1")
    fa1 = row(states_on(paths, DAY), FIN, "fa-1")
    assert (fa1["state"], fa1["rule"], fa1["evidence_ids"]) == (
        "sandboxed",
        "capability_violation",
        [event_id],
    )
    assert fa1["until"] == DAY + timedelta(days=8)  # quiet_days 7: a week in the sandbox


def test_violations_on_two_days_within_seven_freeze_the_agent(paths):
    violation(paths, DAY - timedelta(days=6), FIN, "fa-1")
    second = violation(paths, DAY, FIN, "fa-1")
    # Two on one day, and two 8 days apart, are not repeated violations.
    violation(paths, DAY, FIN, "fa-2", "iam.create_key")
    violation(paths, DAY, FIN, "fa-2", "s3.export")
    violation(paths, DAY - timedelta(days=7), OPS, "ops-1")
    violation(paths, DAY, OPS, "ops-1")
    states = states_on(paths, DAY)
    fa1 = row(states, FIN, "fa-1")
    assert (fa1["state"], fa1["rule"], fa1["evidence_ids"]) == (
        "frozen",
        "repeated_violations",
        [second],
    )
    assert fa1["until"] == DAY + timedelta(days=8)
    assert state(states, FIN, "fa-2") == "sandboxed"
    assert state(states, OPS, "ops-1") == "sandboxed"


def test_a_daily_budget_breach_throttles_the_type_monthly_and_warnings_do_nothing(paths):
    evidence_id = budget(paths, DAY, FIN, period="day", status="breach")
    budget(paths, DAY, OPS, period="month", status="breach")
    budget(paths, DAY, OPS, period="day", status="warning")
    states = states_on(paths, DAY)
    fin = row(states, FIN)
    assert (fin["state"], fin["rule"], fin["evidence_ids"]) == (
        "throttled",
        "daily_budget_breach",
        [evidence_id],
    )
    assert state(states, FIN, "fa-1") == state(states, FIN, "fa-2") == "throttled"
    assert state(states, OPS) == state(states, OPS, "ops-1") == "normal"


def test_the_most_restricted_rule_wins_and_agents_keep_a_stricter_own_state(paths):
    budget(paths, DAY, FIN)  # type throttled
    violation(paths, DAY, FIN, "fa-1")  # fa-1 sandboxed: stricter than its type
    states = states_on(paths, DAY)
    assert state(states, FIN) == state(states, FIN, "fa-2") == "throttled"
    assert row(states, FIN, "fa-1")["rule"] == "capability_violation"
    drift(paths, DAY, FIN)  # type human_only: stricter than fa-1's own
    states = states_on(paths, DAY)
    assert state(states, FIN) == "human_only"
    assert row(states, FIN, "fa-1")["rule"] == "agent_type"


# 2. Hysteresis.


def test_a_state_holds_for_quiet_days_then_relaxes(paths):
    anomaly(paths, DAY, FIN, "fa-1", unseen=["iam.create_key"])  # rogue_behaviour: quiet_days 3
    for offset in range(4):
        fa1 = row(states_on(paths, DAY + timedelta(days=offset)), FIN, "fa-1")
        assert fa1["state"] == "sandboxed", offset
        assert (fa1["since"], fa1["until"]) == (DAY, DAY + timedelta(days=4))
    after = row(states_on(paths, DAY + timedelta(days=4)), FIN, "fa-1")
    assert after["state"] == "normal"
    assert (after["since"], after["until"]) == (None, None)


def test_type_drift_holds_for_its_quiet_days(paths):
    drift(paths, DAY, FIN)  # critical_confidence_drift: quiet_days 2
    held = [state(states_on(paths, DAY + timedelta(days=n)), FIN, "fa-1") for n in range(4)]
    assert held == ["human_only", "human_only", "human_only", "normal"]


def test_new_evidence_during_the_hold_extends_it_and_since_keeps_the_run_start(paths):
    anomaly(paths, DAY - timedelta(days=10), FIN, "fa-1", unseen=["x"])  # an earlier, ended run
    anomaly(paths, DAY, FIN, "fa-1", unseen=["x"])
    later = anomaly(paths, DAY + timedelta(days=2), FIN, "fa-1", unseen=["y"])
    for offset in range(2, 6):
        fa1 = row(states_on(paths, DAY + timedelta(days=offset)), FIN, "fa-1")
        assert fa1["state"] == "sandboxed", offset
        assert fa1["since"] == DAY
        assert fa1["until"] == DAY + timedelta(days=6)
        assert fa1["evidence_ids"] == [later]
    assert state(states_on(paths, DAY + timedelta(days=6)), FIN, "fa-1") == "normal"


def test_since_restarts_when_the_state_changes(paths):
    violation(paths, DAY, FIN, "fa-1")
    violation(paths, DAY + timedelta(days=2), FIN, "fa-1")
    assert row(states_on(paths, DAY + timedelta(days=1)), FIN, "fa-1")["since"] == DAY
    fa1 = row(states_on(paths, DAY + timedelta(days=3)), FIN, "fa-1")
    assert (fa1["state"], fa1["since"]) == ("frozen", DAY + timedelta(days=2))


def test_evaluating_a_day_twice_gives_the_same_frame(paths):
    drift(paths, DAY - timedelta(days=1), OPS)
    violation(paths, DAY - timedelta(days=3), FIN, "fa-1")
    violation(paths, DAY, FIN, "fa-1")
    anomaly(paths, DAY, FIN, "fa-2", unseen=["x"])
    budget(paths, DAY, FIN)
    first = states_on(paths, DAY)
    second = states_on(paths, DAY)
    assert_frame_equal(first, second)
    assert first["state"].to_list() == [
        "throttled",  # FinanceAgent
        "frozen",  # fa-1
        "sandboxed",  # fa-2
        "human_only",  # OpsAgent
        "human_only",  # ops-1
    ]


# 3. Overrides and releases.


def test_a_supervisors_freeze_wins_and_outlives_the_evidence(paths):
    violation(paths, DAY, FIN, "fa-1")
    control_overrides.set_state(
        paths, FIN, "fa-1", "frozen", reason="leaked a key", by="alice", now=at(DAY, 8)
    )
    active = control_overrides.active_overrides(paths)
    for offset in (0, 10):
        day = DAY + timedelta(days=offset)
        fa1 = row(states_on(paths, day, overrides=active, now=at(day)), FIN, "fa-1")
        assert fa1["state"] == "frozen"
        assert (fa1["rule"], fa1["override"], fa1["evidence_ids"]) == ("override", True, [])
        assert "alice" in fa1["reason"] and "leaked a key" in fa1["reason"]
        assert (fa1["since"], fa1["until"]) == (DAY, None)
    assert state(states_on(paths, DAY, overrides=active, now=at(DAY)), FIN, "fa-2") == "normal"


def test_an_override_with_until_expires_back_to_the_rules(paths):
    violation(paths, DAY, FIN, "fa-1")
    override = Override(
        FIN,
        "fa-1",
        "frozen",
        "look at it",
        "alice",
        since=at(DAY, 8),
        until=at(DAY + timedelta(days=2)),
    )
    during = row(states_on(paths, DAY, overrides=[override], now=at(DAY)), FIN, "fa-1")
    assert (during["state"], during["until"]) == ("frozen", DAY + timedelta(days=2))
    later = DAY + timedelta(days=3)
    after = row(states_on(paths, later, overrides=[override], now=at(later, 1)), FIN, "fa-1")
    assert (after["state"], after["rule"], after["override"]) == (
        "sandboxed",
        "capability_violation",
        False,
    )
    assert state(states_on(paths, DAY, overrides=[override], now=at(DAY, 7)), FIN, "fa-1") == (
        "sandboxed"  # not yet begun
    )


def test_a_type_override_reaches_its_agents_unless_they_have_their_own(paths):
    overrides = [
        Override(FIN, None, "human_only", "audit week", "carol", since=at(DAY, 6)),
        Override(FIN, "fa-2", "throttled", "trusted", "dave", since=at(DAY, 7)),
    ]
    states = states_on(paths, DAY, overrides=overrides, now=at(DAY))
    assert state(states, FIN) == state(states, FIN, "fa-1") == "human_only"
    assert "carol" in row(states, FIN, "fa-1")["reason"]
    fa2 = row(states, FIN, "fa-2")
    assert (fa2["state"], fa2["override"]) == ("throttled", True)
    assert "dave" in fa2["reason"]
    assert state(states, OPS, "ops-1") == "normal"


def test_a_release_relaxes_now_and_newer_evidence_restricts_again(paths):
    violation(paths, DAY, FIN, "fa-1")
    anomaly(paths, DAY, FIN, "fa-2", unseen=["x"])
    assert state(states_on(paths, DAY), FIN, "fa-1") == "sandboxed"
    control_overrides.release(paths, FIN, "fa-1", reason="false alarm", by="bob", now=at(DAY, 15))
    released = control_overrides.releases(paths)
    assert released == [Release(FIN, "fa-1", DAY, "bob", "false alarm")]
    fa1 = row(states_on(paths, DAY, releases=released), FIN, "fa-1")
    assert (fa1["state"], fa1["rule"]) == ("normal", "release")
    assert "bob" in fa1["reason"] and "false alarm" in fa1["reason"]
    assert state(states_on(paths, DAY, releases=released), FIN, "fa-2") == "sandboxed"
    next_day = DAY + timedelta(days=1)
    assert state(states_on(paths, next_day, releases=released), FIN, "fa-1") == "normal"
    # A new violation counts; the released one does not, so this is not a repeat (frozen).
    fresh = violation(paths, next_day, FIN, "fa-1")
    again = row(states_on(paths, next_day, releases=released), FIN, "fa-1")
    assert (again["state"], again["rule"], again["evidence_ids"]) == (
        "sandboxed",
        "capability_violation",
        [fresh],
    )


def test_a_release_of_a_type_acknowledges_its_type_wide_evidence(paths):
    drift(paths, DAY, FIN)
    releases = [Release(FIN, None, DAY, "erin", "known model change")]
    states = states_on(paths, DAY, releases=releases)
    assert state(states, FIN) == state(states, FIN, "fa-1") == "normal"
    assert "erin" in row(states, FIN, "fa-1")["reason"]


def test_a_new_set_lifts_the_previous_override(paths):
    first = control_overrides.set_state(
        paths, FIN, "fa-1", "frozen", reason="incident", by="alice", now=at(DAY, 8)
    )
    second = control_overrides.set_state(
        paths, FIN, "fa-1", "throttled", reason="calmer now", by="bob", now=at(DAY, 10)
    )
    other = control_overrides.set_state(
        paths, FIN, "fa-2", "sandboxed", reason="unrelated", by="carol", now=at(DAY, 9)
    )
    records = {r["override_id"]: r for r in control_overrides.records(paths).iter_rows(named=True)}
    assert len(records) == 3
    assert records[first["override_id"]]["lifted_at"] == at(DAY, 10)
    assert records[first["override_id"]]["lifted_by"] == "bob"
    for kept in (second, other):
        assert records[kept["override_id"]]["lifted_at"] is None
        assert records[kept["override_id"]]["lifted_by"] is None
    active = control_overrides.active_overrides(paths)
    assert {(o.agent_id, o.state, o.by) for o in active} == {
        ("fa-1", "throttled", "bob"),
        ("fa-2", "sandboxed", "carol"),
    }
    control_overrides.release(paths, FIN, "fa-2", reason="done", by="dave", now=at(DAY, 11))
    assert {o.agent_id for o in control_overrides.active_overrides(paths)} == {"fa-1"}


@pytest.mark.parametrize(
    ("state_name", "reason", "until", "message"),
    [
        ("paused", "why", None, r"unknown state 'paused'; expected one of normal, throttled"),
        ("frozen", "   ", None, r"the reason is empty"),
        ("frozen", "why", at(DAY, 11), r"not in the future"),
        ("frozen", "why", at(DAY, 12), r"not in the future"),
    ],
    ids=["unknown-state", "empty-reason", "until-past", "until-now"],
)
def test_a_bad_override_is_refused_with_a_sentence(paths, state_name, reason, until, message):
    with pytest.raises(ControlError, match=message) as raised:
        control_overrides.set_state(
            paths, FIN, "fa-1", state_name, reason=reason, by="alice", until=until, now=at(DAY)
        )
    assert str(raised.value).endswith(".")
    assert control_overrides.records(paths).is_empty()


# 4. refresh_autonomy: the tables, the history and the ledger.


def _ingest_agents(paths: Paths) -> None:
    records = [
        event(1, agent_id="fa-1", agent_type=FIN),
        event(2, agent_id="fa-2", agent_type=FIN),
        event(3, agent_id="ops-1", agent_type=OPS),
        event(4, agent_id="old-1", agent_type="ResearchAgent", ts="2026-10-01T09:00:00.000000Z"),
    ]
    write_jsonl(paths.landing / "events.jsonl", records)
    assert ingest_landing(paths, now=at(DAY, 1)).records == 4


def _history(paths: Paths) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(AUTONOMY_HISTORY)).sort("changed_at", "agent_id")


def test_refresh_publishes_states_history_and_ledger(paths):
    _ingest_agents(paths)
    finding = drift(paths, DAY, OPS)
    violation(paths, DAY, FIN, "fa-1")
    update = refresh_autonomy(paths, DAY, now=at(DAY, 13))

    table = pl.read_delta(paths.table_uri(AUTONOMY_STATE))
    subjects = sorted(table.select("agent_type", "agent_id").iter_rows(), key=str)
    assert subjects == sorted(
        [(FIN, None), (FIN, "fa-1"), (FIN, "fa-2"), (OPS, None), (OPS, "ops-1")], key=str
    )  # old-1 was last seen 50 days ago
    assert set(table["day"]) == {DAY}
    assert set(table["evaluated_at"]) == {at(DAY, 13)}
    assert_frame_equal(
        table.drop("day", "evaluated_at").sort("agent_type", "agent_id", nulls_last=False),
        update.states,
        check_dtypes=False,
    )

    changes = {(r["agent_type"], r["agent_id"]): r for r in _history(paths).iter_rows(named=True)}
    summary = {
        k: (v["from_state"], v["to_state"], v["rule"], v["actor"]) for k, v in changes.items()
    }
    assert summary == {
        (OPS, None): ("normal", "human_only", "critical_confidence_drift", SYSTEM_ACTOR),
        (OPS, "ops-1"): ("normal", "human_only", "agent_type", SYSTEM_ACTOR),
        (FIN, "fa-1"): ("normal", "sandboxed", "capability_violation", SYSTEM_ACTOR),
    }
    assert update.changes.height == 3

    # A supervisor freezes fa-2: the change is the supervisor's.
    control_overrides.set_state(
        paths, FIN, "fa-2", "frozen", reason="odd refunds", by="alice", now=at(DAY, 14)
    )
    assert refresh_autonomy(paths, DAY, now=at(DAY, 15)).changes.height == 1
    # And releases fa-1.
    control_overrides.release(paths, FIN, "fa-1", reason="benign", by="bob", now=at(DAY, 16))
    assert refresh_autonomy(paths, DAY, now=at(DAY, 17)).changes.height == 1
    # The same day again: nothing new to record.
    again = refresh_autonomy(paths, DAY, now=at(DAY, 18))
    assert again.changes.is_empty()

    history = _history(paths)
    assert history.height == 5
    last_two = history.filter(pl.col("changed_at") > at(DAY, 13)).sort("changed_at")
    assert last_two.select("agent_id", "from_state", "to_state", "rule", "actor").rows() == [
        ("fa-2", "normal", "frozen", "override", "alice"),
        ("fa-1", "sandboxed", "normal", "release", "bob"),
    ]

    ledger = AuditLedger(paths)
    entries = ledger.entries(kind="autonomy_change")
    assert entries.height == 5
    assert sorted(zip(entries["subject"], entries["actor"], strict=True)) == sorted(
        [
            ("type:OpsAgent", SYSTEM_ACTOR),
            ("ops-1", SYSTEM_ACTOR),
            ("fa-1", SYSTEM_ACTOR),
            ("fa-2", "alice"),
            ("fa-1", "bob"),
        ]
    )
    payload = json.loads(entries.filter(pl.col("subject") == "type:OpsAgent")["payload"][0])
    ops_finding = changes[(OPS, None)]["evidence_ids"]
    assert ops_finding == [finding]
    assert payload == {
        "agent_type": OPS,
        "agent_id": None,
        "from": "normal",
        "to": "human_only",
        "rule": "critical_confidence_drift",
        "reason": changes[(OPS, None)]["reason"],
        "evidence_ids": ops_finding,
        "day": DAY.isoformat(),
    }
    assert len(payload["evidence_ids"]) == 1
    report = ledger.verify()
    assert report.ok, report.failure
    assert report.checked == 5


def test_refresh_day_by_day_records_each_change_once(paths):
    _ingest_agents(paths)
    anomaly(paths, DAY, FIN, "fa-1", unseen=["x"])  # sandboxed DAY..DAY+3
    for offset in range(6):
        day = DAY + timedelta(days=offset)
        for hour in (6, 18):  # two runs a day
            refresh_autonomy(paths, day, now=at(day, hour))
    history = _history(paths)
    assert history.select("day", "agent_id", "from_state", "to_state", "actor").rows() == [
        (DAY, "fa-1", "normal", "sandboxed", SYSTEM_ACTOR),
        (DAY + timedelta(days=4), "fa-1", "sandboxed", "normal", SYSTEM_ACTOR),
    ]
    assert AuditLedger(paths).entries(kind="autonomy_change").height == 2
    assert AuditLedger(paths).verify().ok


# 5. The control file.


def test_the_control_file_lists_states_tools_and_budgets(paths):
    _ingest_agents(paths)
    violation(paths, DAY, FIN, "fa-1")
    budget(paths, DAY, FIN, period="day", status="breach")
    budget(paths, DAY, OPS, period="month", status="warning")
    control_overrides.set_state(
        paths, OPS, "ops-1", "frozen", reason="outage", by="alice", now=at(DAY, 9)
    )
    update = refresh_autonomy(paths, DAY, now=at(DAY, 13))
    assert update.control_file == control_path(paths)
    content = json.loads(update.control_file.read_text("utf-8"))
    registry = load_registry(paths)
    fin_tools = registry.entry(FIN)

    assert content["version"] == 1
    assert content["day"] == DAY.isoformat()
    assert set(content["agents"]) == {"fa-1", "fa-2", "ops-1"}
    assert set(content["agent_types"]) == {FIN, OPS}
    fa1, fa2, ops1 = (content["agents"][a] for a in ("fa-1", "fa-2", "ops-1"))
    assert (fa1["state"], fa1["allowed_tools"]) == ("sandboxed", list(fin_tools.read_only))
    assert set(fa1["allowed_tools"]) < set(fin_tools.tools)
    assert (fa2["state"], fa2["rule"], fa2["allowed_tools"]) == (
        "throttled",
        "agent_type",
        list(fin_tools.tools),
    )
    assert (ops1["state"], ops1["override"], ops1["allowed_tools"]) == ("frozen", True, [])
    assert content["agent_types"][OPS]["state"] == "normal"
    assert content["agent_types"][OPS]["allowed_tools"] == list(registry.entry(OPS).tools)
    assert fa1["budget_status"] == fa2["budget_status"] == "breach"
    assert content["agent_types"][FIN]["budget_status"] == "breach"
    assert ops1["budget_status"] == "warning"
    assert fa1["since"] == DAY.isoformat()
    assert fa1["until"] == (DAY + timedelta(days=8)).isoformat()  # a violation: quiet_days 7
    assert fa1["evidence_ids"] and fa1["reason"]
    assert sorted(p.name for p in update.control_file.parent.iterdir()) == ["autonomy.json"]


_READER = textwrap.dedent(
    """
    import json, os, sys
    path, stop = sys.argv[1], sys.argv[2]
    reads, bad, seen = 0, [], set()
    while not os.path.exists(stop):
        try:
            with open(path, "rb") as file:
                text = file.read()
        except FileNotFoundError:
            bad.append("missing")
            continue
        reads += 1
        try:
            doc = json.loads(text)
            assert doc["version"] == 1 and "agents" in doc and "agent_types" in doc
            # refresh_autonomy's own documents carry no count; the test's large ones do
            assert len(doc["agents"]) == doc.get("expected_agents", len(doc["agents"]))
            seen.add(doc["generated_at"])
        except Exception as error:
            bad.append(f"{type(error).__name__}: {text[:60]!r}...{text[-60:]!r}")
    print(json.dumps({"reads": reads, "bad": bad[:5], "bad_count": len(bad), "seen": len(seen)}))
    """
)


def test_readers_never_see_a_partial_control_file(paths, tmp_path):
    _ingest_agents(paths)
    violation(paths, DAY, FIN, "fa-1")
    update = refresh_autonomy(paths, DAY, now=at(DAY, 13))
    path = update.control_file
    registry = load_registry(paths)
    small = update.states
    # A large document too (2,000 agents), so a torn write would be likely to show.
    fa1 = small.filter(pl.col("agent_id") == "fa-1")
    clones = [fa1.with_columns(pl.lit(f"a-{n}").alias("agent_id")) for n in range(2000)]
    many = pl.concat([small.filter(pl.col("agent_id").is_null()), *clones])
    documents = []
    for states in (small, many):
        content = document(states, DAY, registry, {FIN: "ok"}, now=at(DAY, 13))
        documents.append(content | {"expected_agents": len(content["agents"])})
    write_atomically(path, documents[0])

    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(path), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        for n in range(200):
            if n % 40 == 20:  # now and then the real thing
                refresh_autonomy(paths, DAY, now=at(DAY, 14) + timedelta(seconds=n))
            else:
                write_atomically(path, documents[n % 2] | {"generated_at": f"write-{n}"})
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=30)
    result = json.loads(out)
    assert result["bad_count"] == 0, result["bad"]
    assert result["reads"] > 200
    assert result["seen"] >= 20  # the reader really ran alongside the writes
    assert sorted(p.name for p in path.parent.iterdir()) == ["autonomy.json"]


def test_of_two_rules_setting_one_state_the_longer_hold_says_until_when(paths):
    # rogue_behaviour (3 quiet days) and capability_violation (7) both sandbox fa-1 on DAY:
    # the state ends when the longer hold ends, and that rule is named.
    anomaly(paths, DAY, FIN, "fa-1", unseen=["iam.create_key"])
    violation(paths, DAY, FIN, "fa-1")
    fa1 = row(states_on(paths, DAY), FIN, "fa-1")
    assert (fa1["state"], fa1["rule"], fa1["until"]) == (
        "sandboxed",
        "capability_violation",
        DAY + timedelta(days=8),
    )
    later = row(states_on(paths, DAY + timedelta(days=5)), FIN, "fa-1")
    assert (later["state"], later["since"]) == ("sandboxed", DAY)
