"""Judging past actions: read_actions, 30-day statistics, judge, refresh, back-test and the CLI.

Every test ingests a small hand-made fleet (native JSONL through ``ingest_landing``) into a
temporary home, so the expectations below are exact and come from the events written here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from agentops_assets.cli.main import main
from agentops_assets.governance.backtest import backtest
from agentops_assets.governance.engine import PolicyBundle, PolicyBundleError, default_policy_folder
from agentops_assets.governance.judge import (
    action_stats,
    decide_one,
    evaluations,
    judge,
    load_policies,
    read_actions,
    with_context,
)
from agentops_assets.governance.refresh import refresh_decisions
from agentops_assets.governance.tables import (
    CAPABILITY_VIOLATIONS,
    DECISION_PATH,
    DECISION_SCHEMA,
    POLICY_DECISIONS,
)
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl

DAY = dt.date(2026, 11, 20)  # the day judged; its 30-day window is [DAY - 30, DAY - 1]
EARLY = DAY - dt.timedelta(days=25)  # a day with almost no history of ledger.query
FIRST = DAY - dt.timedelta(days=31)  # the first day with events (just outside DAY's window)
INGESTED_AT = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
HISTORY_DAYS = 10  # ledger.query runs on each of the 10 days before DAY

# A candidate that freezes FinanceAgent refunds: one extra deny rule on top of the shipped file.
FROZEN_REFUNDS = """
findings contains {
	"rule": "refunds_frozen",
	"effect": "deny",
	"reason": "FinanceAgent refunds are frozen.",
} if {
	input.agent_type == "FinanceAgent"
	input.action == "payments.refund"
}
"""


def _days_before(days: int) -> dt.date:
    return DAY - dt.timedelta(days=days)


@dataclass
class Fleet:
    """The events written to landing, by name for the ones the tests single out."""

    records: list[dict[str, object]] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)  # name -> event_id

    def add(self, day: dt.date, name: str | None = None, **fields: object) -> dict[str, object]:
        n = len(self.records) + 1
        ids = {
            "event_id": f"ev-{n:05d}",
            "trace_id": f"tr-{n:05d}",
            "ts": f"{day.isoformat()}T{8 + n % 10:02d}:{n % 60:02d}:00.000000Z",
        }
        record = event(n, **{**ids, **fields})
        self.records.append(record)
        if name is not None:
            self.named[name] = str(record["event_id"])
        return record

    def override(self, action: dict[str, object], day: dt.date, kind: str = "override") -> None:
        """A human review of ``action``'s trace with feedback ``kind``."""
        self.add(
            day,
            kind="human_review",
            action="review",
            trace_id=action["trace_id"],
            feedback_kind=kind,
            reviewer="alice",
            feedback_rationale="Wrong ledger.",
        )

    def actions(self) -> list[dict[str, object]]:
        return [r for r in self.records if r["kind"] in ("tool_call", "decision")]


def ledger_query(
    fleet: Fleet, day: dt.date, name: str | None = None, **fields: object
) -> dict[str, object]:
    return fleet.add(day, name, kind="tool_call", action="ledger.query", **fields)


def _build_fleet() -> Fleet:
    fleet = Fleet()
    # --- the history of ledger.query (FinanceAgent, one agent) ---
    # 31 days before DAY: outside DAY's window, failing and overridden (must not count).
    fleet.override(ledger_query(fleet, _days_before(31), "outside", status="error"), FIRST)
    ledger_query(fleet, _days_before(30), "edge")  # the window's first day: counts
    ledger_query(fleet, EARLY, "early_1")
    ledger_query(fleet, EARLY, "early_2")
    history = []
    for i in range(22):  # 22 calls over the 10 days before DAY
        history.append(ledger_query(fleet, _days_before(1 + i % HISTORY_DAYS)))
    for record in history[:3]:
        record["status"] = "error"
    for record in history[3:5]:
        record["outcome"] = "failure"
    for record in history[5:11]:
        fleet.override(record, _days_before(1))
    fleet.override(history[11], _days_before(1), kind="approve")  # an approval is no override
    # DAY itself: three calls, one failing and overridden (they count for later days only).
    fleet.override(ledger_query(fleet, DAY, "today_1", status="error"), DAY)
    ledger_query(fleet, DAY, "today_2")
    ledger_query(fleet, DAY, "today_3")

    # --- DAY: actions for the capability registry and the amount / data zone attributes ---
    refund = {"kind": "tool_call", "action": "payments.refund"}
    fleet.add(DAY, "rogue", kind="tool_call", action="iam.create_key")
    fleet.add(DAY, "refund_big", attributes={"amount_usd": 25000}, **refund)
    fleet.add(DAY, "refund_small", attributes={"agentops.amount_usd": "120.5"}, **refund)
    both = {"amount_usd": 10, "agentops.amount_usd": 9e6}
    fleet.add(DAY, "refund_both", attributes=both, **refund)
    fleet.add(_days_before(5), "refund_past", attributes={"amount_usd": 40}, **refund)
    fleet.add(
        DAY,
        "refund_vault",
        kind="decision",
        action="payments.refund",
        attributes={"agentops.amount_usd": 12000, "data_zone": "vault"},
    )
    support = {"agent_id": "support-agent-01", "agent_type": "SupportAgent", "kind": "tool_call"}
    restricted = {"agentops.data_zone": "restricted"}
    fleet.add(DAY, "restricted", action="kb.search", attributes=restricted, **support)
    fleet.add(DAY, "internal", action="kb.search", attributes={"data_zone": "internal"}, **support)
    fleet.add(DAY, "escalate", **{**support, "kind": "decision"}, action="escalate")
    # --- events that are not actions ---
    fleet.add(DAY, "llm")  # the factory's default: an llm_call
    fleet.add(DAY, "memory", kind="memory_op", action="memory.write")
    return fleet


@pytest.fixture
def fleet(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    monkeypatch.delenv("AGENTOPS_POLICIES", raising=False)
    built = _build_fleet()
    write_jsonl(paths.landing / "fleet.jsonl", built.records)
    report = ingest_landing(paths, now=INGESTED_AT)
    assert report.quarantined_rows == 0
    return built


def _day(record: dict[str, object]) -> dt.date:
    return dt.date.fromisoformat(str(record["ts"])[:10])


def _well_used(fleet: Fleet) -> set[str]:
    """The actions with at least 20 uses of their action in the 30 days before their day,
    counted from the events written (the policies' min_uses)."""
    actions = fleet.actions()
    found = set()
    for record in actions:
        day = _day(record)
        uses = sum(
            1
            for other in actions
            if other["action"] == record["action"]
            and day - dt.timedelta(days=30) <= _day(other) < day
        )
        if uses >= 20:
            found.add(str(record["event_id"]))
    return found


def _judged(paths: Paths, first: dt.date = FIRST, last: dt.date = DAY) -> pl.DataFrame:
    policies = load_policies(paths)
    actions = with_context(paths, read_actions(paths, first, last))
    return judge(policies, actions, action_stats(paths, first, last))


def _by_event(frame: pl.DataFrame) -> dict[str, dict[str, object]]:
    return {row["event_id"]: row for row in frame.iter_rows(named=True)}


def _versions(paths: Paths) -> dict[str, int]:
    lake = Path(paths.lake_uri)
    return {
        table.name: DeltaTable(str(table)).version()
        for table in sorted(lake.iterdir())
        if (table / "_delta_log").is_dir()
    }


# --- read_actions ------------------------------------------------------------------------------


def test_read_actions_keeps_tool_calls_and_decisions_with_amount_and_zone_from_attributes(
    paths: Paths, fleet: Fleet
) -> None:
    actions = read_actions(paths, FIRST, DAY)

    assert sorted(actions["event_id"]) == sorted(str(r["event_id"]) for r in fleet.actions())
    assert set(actions["kind"]) == {"tool_call", "decision"}
    assert not {fleet.named["llm"], fleet.named["memory"]} & set(actions["event_id"])
    rows = _by_event(actions)
    expected = {
        "refund_big": (25000.0, None),
        "refund_small": (120.5, None),
        "refund_both": (10.0, None),  # the plain key wins over the agentops. one
        "refund_vault": (12000.0, "vault"),
        "restricted": (None, "restricted"),
        "internal": (None, "internal"),
        "rogue": (None, None),
    }
    for name, (amount, zone) in expected.items():
        row = rows[fleet.named[name]]
        assert (row["amount_usd"], row["data_zone"]) == (amount, zone), name
    assert rows[fleet.named["refund_vault"]]["kind"] == "decision"
    assert rows[fleet.named["rogue"]]["day"] == DAY

    # Only the partitions of the range.
    early = read_actions(paths, EARLY, EARLY)
    assert sorted(early["event_id"]) == sorted([fleet.named["early_1"], fleet.named["early_2"]])
    assert set(early["day"]) == {EARLY}


# --- action_stats ------------------------------------------------------------------------------


def test_action_stats_count_the_30_days_before_the_day_only(paths: Paths, fleet: Fleet) -> None:
    stats = action_stats(paths, DAY, DAY)
    rows = {row["action"]: row for row in stats.iter_rows(named=True)}

    # ledger.query: edge (30 days before) + 2 early + 22 history; not DAY's 3, not 31 days before.
    query = rows["ledger.query"]
    assert query["day"] == DAY
    assert query["count"] == 25
    assert query["failure_rate"] == pytest.approx(5 / 25)  # 3 errors + 2 failure outcomes
    assert query["override_rate"] == pytest.approx(6 / 25)  # the approval does not count
    # The only refund before DAY is 5 days before; DAY's own actions have no history.
    assert rows["payments.refund"]["count"] == 1
    assert rows["payments.refund"]["failure_rate"] == 0.0
    assert set(rows) == {"ledger.query", "payments.refund"}

    # EARLY's window holds the event 31 days before DAY (failing, overridden) and the edge one.
    early = action_stats(paths, EARLY, EARLY).row(0, named=True)
    assert (early["action"], early["count"]) == ("ledger.query", 2)
    assert (early["failure_rate"], early["override_rate"]) == (0.5, 0.5)

    # Day by day over a range: DAY + 1 sees DAY's three calls (one failing and overridden) and
    # drops the edge event, which is now 31 days before.
    both = action_stats(paths, DAY, DAY + dt.timedelta(days=1)).filter(
        pl.col("action") == "ledger.query"
    )
    assert both["day"].to_list() == [DAY, DAY + dt.timedelta(days=1)]
    assert both["count"].to_list() == [25, 27]
    assert both["failure_rate"][1] == pytest.approx(6 / 27)
    assert both["override_rate"][1] == pytest.approx(7 / 27)
    assert stats.schema["count"] == pl.Int64


# --- judge -------------------------------------------------------------------------------------


def test_judge_decides_each_rule_on_real_rows(paths: Paths, fleet: Fleet) -> None:
    decided = _judged(paths)
    assert decided.schema == DECISION_SCHEMA
    assert decided.height == len(fleet.actions())
    rows = _by_event(decided)

    def verdict(name: str) -> tuple[str, str, list[str], int]:
        row = rows[fleet.named[name]]
        return row["decision"], row["zone"], row["rules"], row["approvals_required"]

    assert verdict("rogue") == ("deny", "red", ["tool_not_in_capabilities"], 0)
    assert verdict("refund_big") == ("review", "red", ["amount_above_max"], 1)
    assert verdict("refund_small") == ("allow", "green", [], 0)
    assert verdict("refund_both") == ("allow", "green", [], 0)
    assert verdict("refund_vault") == (
        "deny", "red", ["amount_above_max", "data_zone_not_allowed"], 0,
    )  # fmt: skip
    assert verdict("restricted") == ("deny", "red", ["data_zone_not_allowed"], 0)
    assert verdict("internal") == ("allow", "green", [], 0)
    assert verdict("escalate") == ("allow", "green", [], 0)  # decisions need no registry tool
    for name in ("today_1", "today_2", "today_3"):
        assert verdict(name) == ("review", "yellow", ["often_overridden"], 0)
        assert rows[fleet.named[name]]["sample_rate"] == 0.05
    # Only ledger.query is used 20 times in 30 days: on DAY (25 uses before it), DAY - 1 (23,
    # the event 31 days before DAY counts there) and DAY - 2 (20); overridden above 20% each.
    yellow = set(decided.filter(pl.col("zone") == "yellow")["event_id"])
    assert yellow == _well_used(fleet)
    assert {_day(r) for r in fleet.actions() if r["event_id"] in yellow} == {
        DAY - dt.timedelta(days=n) for n in range(3)
    }
    assert len(yellow) == 9
    # The same action without 20 uses of history in the 30 days before its day.
    for name in ("early_1", "early_2", "edge", "outside"):
        assert verdict(name) == ("allow", "green", [], 0)
    assert "Tool iam.create_key is outside" in rows[fleet.named["rogue"]]["reasons"][0]
    assert rows[fleet.named["rogue"]]["sample_rate"] == 1.0
    assert decided["error"].null_count() == decided.height


def test_judge_rows_are_opa_decision_logs_with_stable_ids(paths: Paths, fleet: Fleet) -> None:
    first = _judged(paths)
    revision = load_policies(paths).revision
    assert set(first["path"]) == {DECISION_PATH}
    assert set(first["revision"]) == {revision}
    assert first["decision_id"].n_unique() == first.height
    for row in first.iter_rows(named=True):
        assert json.loads(row["bundles"]) == {"agentops": {"revision": revision}}
        document = json.loads(row["input"])
        assert document["event_id"] == row["event_id"]
        assert document["action"] == row["action"]
        assert "capabilities" in document["context"]
        result = json.loads(row["result"])
        assert (result["decision"], result["zone"]) == (row["decision"], row["zone"])
        assert (result["reasons"], result["rules"]) == (row["reasons"], row["rules"])
    refund = _by_event(first)[fleet.named["refund_big"]]
    assert json.loads(refund["input"])["amount_usd"] == 25000.0
    assert json.loads(refund["input"])["context"]["capabilities"]["max_amount_usd"] == 10000
    written = next(r for r in fleet.records if r["event_id"] == fleet.named["refund_big"])
    assert refund["timestamp"] == dt.datetime.fromisoformat(str(written["ts"]))

    again = _judged(paths)
    assert again["decision_id"].to_list() == first["decision_id"].to_list()

    candidate = _candidate(paths.home / "candidate", FROZEN_REFUNDS)
    other = load_policies(paths, candidate)
    assert other.revision != revision
    actions = with_context(paths, read_actions(paths, FIRST, DAY))
    under_other = judge(other, actions, action_stats(paths, FIRST, DAY))
    assert under_other["event_id"].to_list() == first["event_id"].to_list()
    assert not set(under_other["decision_id"]) & set(first["decision_id"])
    assert set(under_other["revision"]) == {other.revision}


def test_judge_evaluates_distinct_documents_once_and_agrees_with_single_evaluation(
    paths: Paths, fleet: Fleet
) -> None:
    policies = load_policies(paths)
    actions = with_context(paths, read_actions(paths, FIRST, DAY))
    stats = action_stats(paths, FIRST, DAY)
    # The 22 history calls fall on 10 days, DAY has 3 alike calls: far fewer documents.
    distinct = evaluations(policies, actions)
    assert distinct < actions.height
    assert distinct <= actions.height - 12 - 2  # history: 22 calls on 10 days; DAY: 3 as 1

    decided = judge(policies, actions, stats)
    alone = PolicyBundle.load(default_policy_folder())
    by_day: dict[dt.date, dict[str, dict[str, object]]] = {}
    for row in stats.iter_rows(named=True):
        by_day.setdefault(row["day"], {})[row["action"]] = {
            "count": row["count"],
            "failure_rate": round(row["failure_rate"], 6),
            "override_rate": round(row["override_rate"], 6),
        }
    for row in decided.iter_rows(named=True):
        expected = alone.evaluate(json.loads(row["input"]), {"stats": by_day.get(row["day"], {})})
        assert expected.error is None
        want = expected.to_dict()
        del want["revision"]
        assert json.loads(row["result"]) == want, row["event_id"]
        assert (row["decision"], row["zone"]) == (expected.decision, expected.zone)
    alone.close()


def test_judging_on_several_cores_gives_each_row_the_same_decision(
    paths: Paths, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentops_assets.governance import judge as judge_module

    policies = load_policies(paths)
    actions = with_context(paths, read_actions(paths, FIRST, DAY))
    stats = action_stats(paths, FIRST, DAY)
    alone = judge(policies, actions, stats)
    used: list[int] = []
    copy = judge_module.PolicyBundle.copy

    def counted(bundle: PolicyBundle) -> PolicyBundle:
        used.append(1)
        return copy(bundle)

    monkeypatch.setattr(judge_module, "PARALLEL_FROM", 2)
    monkeypatch.setattr(judge_module.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(judge_module.PolicyBundle, "copy", counted)
    together = judge(policies, actions, stats)
    assert len(used) == 2  # three bundles judged a third of the documents each
    columns = ["event_id", "decision", "zone", "reasons", "rules", "result", "decision_id"]
    assert together.select(columns).equals(alone.select(columns))


def test_decide_one_adds_the_lakes_context_and_the_days_statistics(
    paths: Paths, fleet: Fleet
) -> None:
    policies = load_policies(paths)
    document = {"agent_id": "finance-agent-01", "agent_type": "FinanceAgent",
                "kind": "tool_call", "action": "ledger.query"}  # fmt: skip
    decision, full = decide_one(paths, policies, document, day=DAY)
    assert (decision.decision, decision.zone, decision.rules) == (
        "review", "yellow", ("often_overridden",),
    )  # fmt: skip
    assert full["context"]["capabilities"]["max_amount_usd"] == 10000
    quiet, _ = decide_one(paths, policies, document, day=EARLY)
    assert (quiet.decision, quiet.zone) == ("allow", "green")
    # A context the document brings wins, key by key.
    mine = {**document, "context": {"capabilities": {"tools": ["ledger.*"]}}}
    decision, full = decide_one(paths, policies, {**mine, "action": "iam.create_key"}, day=EARLY)
    assert decision.rules == ("tool_not_in_capabilities",)
    assert full["context"]["capabilities"] == {"tools": ["ledger.*"]}
    assert "drift" in full["context"]


def test_decide_one_reads_the_agents_autonomy_state(paths: Paths, fleet: Fleet) -> None:
    from agentops_assets.control.tables import AUTONOMY_STATE, CURRENT_SCHEMA
    from agentops_assets.storage import lake

    now = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    rows = [
        ("FinanceAgent", None, "human_only"),  # the whole type ...
        ("FinanceAgent", "finance-agent-01", "frozen"),  # ... and one agent of it
    ]
    frame = pl.DataFrame(
        [
            {"day": DAY, "agent_type": t, "agent_id": a, "state": s, "rule": "r", "reason": "why",
             "evidence_ids": [], "since": DAY, "until": None, "override": False,
             "evaluated_at": now}
            for t, a, s in rows
        ],
        schema=CURRENT_SCHEMA,
    )  # fmt: skip
    lake.overwrite(paths.table_uri(AUTONOMY_STATE), frame)
    policies = load_policies(paths)
    query = {"agent_type": "FinanceAgent", "kind": "tool_call", "action": "ledger.query"}
    frozen, full = decide_one(paths, policies, {**query, "agent_id": "finance-agent-01"}, day=EARLY)
    assert (frozen.decision, frozen.rules) == ("deny", ("autonomy_frozen",))
    assert full["context"]["autonomy"] == {"state": "frozen", "reason": "why"}
    # An agent without a row of its own gets its type's state.
    other, _ = decide_one(paths, policies, {**query, "agent_id": "finance-agent-09"}, day=EARLY)
    assert (other.decision, other.zone, other.rules) == ("review", "red", ("autonomy_human_only",))
    # A context the document brings wins here too.
    told = {**query, "agent_id": "finance-agent-01", "context": {"autonomy": {"state": "normal"}}}
    allowed, _ = decide_one(paths, policies, told, day=EARLY)
    assert allowed.decision == "allow"


# --- refresh_decisions -------------------------------------------------------------------------


def test_refresh_decisions_writes_both_tables_and_a_rerun_replaces(
    paths: Paths, fleet: Fleet
) -> None:
    judged = refresh_decisions(paths, FIRST, DAY)
    assert judged.decisions.height == len(fleet.actions())
    assert judged.evaluations < judged.decisions.height

    stored = pl.read_delta(paths.table_uri(POLICY_DECISIONS))
    violations = pl.read_delta(paths.table_uri(CAPABILITY_VIOLATIONS))
    assert stored.height == len(fleet.actions())
    assert sorted(stored["event_id"]) == sorted(str(r["event_id"]) for r in fleet.actions())
    assert violations["event_id"].to_list() == [fleet.named["rogue"]]
    assert violations["rule"].to_list() == ["tool not in FinanceAgent's registry"]
    assert violations["day"].to_list() == [DAY]
    versions = _versions(paths)

    # Again over DAY alone, then over the whole range: replaced, never duplicated.
    rerun = refresh_decisions(paths, DAY, DAY)
    day_rows = sum(1 for r in fleet.actions() if str(r["ts"]).startswith(DAY.isoformat()))
    assert rerun.decisions.height == day_rows
    stored = pl.read_delta(paths.table_uri(POLICY_DECISIONS))
    assert stored.height == len(fleet.actions())
    assert stored["event_id"].n_unique() == stored.height
    on_day = stored.filter(pl.col("day") == DAY)
    assert set(on_day["judged_at"]) == set(rerun.decisions["judged_at"])
    assert set(stored.filter(pl.col("day") < DAY)["judged_at"]) == set(
        judged.decisions["judged_at"]
    )
    assert pl.read_delta(paths.table_uri(CAPABILITY_VIOLATIONS)).height == 1
    after = _versions(paths)
    assert after[POLICY_DECISIONS] > versions[POLICY_DECISIONS]
    assert after[CAPABILITY_VIOLATIONS] > versions[CAPABILITY_VIOLATIONS]

    refresh_decisions(paths, FIRST, DAY)
    stored = pl.read_delta(paths.table_uri(POLICY_DECISIONS))
    assert stored.height == stored["decision_id"].n_unique() == len(fleet.actions())
    assert pl.read_delta(paths.table_uri(CAPABILITY_VIOLATIONS)).height == 1


# --- backtest ----------------------------------------------------------------------------------


def _candidate(folder: Path, extra: str, *, replace: tuple[str, str] | None = None) -> Path:
    source = (default_policy_folder() / "agentops.rego").read_text()
    if replace is not None:
        assert replace[0] in source
        source = source.replace(*replace)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agentops.rego").write_text(source + extra)
    return folder


def test_backtest_counts_exactly_the_actions_a_stricter_candidate_changes(
    paths: Paths, fleet: Fleet, tmp_path: Path
) -> None:
    refresh_decisions(paths, FIRST, DAY)  # so that the governance tables exist too
    before = _versions(paths)
    assert {"agent_events", POLICY_DECISIONS, CAPABILITY_VIOLATIONS} <= set(before)

    report = backtest(paths, _candidate(tmp_path / "frozen", FROZEN_REFUNDS), FIRST, DAY)

    # Computed from the events: FinanceAgent refunds, except the one already denied for its
    # data zone (FinanceAgent may touch public, internal and restricted only).
    zones = {"public", "internal", "restricted"}
    expected = {
        str(r["event_id"])
        for r in fleet.actions()
        if r["agent_type"] == "FinanceAgent"
        and r["action"] == "payments.refund"
        and r["attributes"].get("data_zone", "public") in zones  # type: ignore[union-attr]
    }
    assert expected == {fleet.named[n] for n in ("refund_big", "refund_small", "refund_both",
                                                 "refund_past")}  # fmt: skip
    assert report.evaluated == len(fleet.actions())
    assert report.changed == len(expected)
    assert report.candidate_error is None
    transitions = {
        (r["old_decision"], r["old_zone"], r["new_decision"], r["new_zone"]): r["count"]
        for r in report.transitions.iter_rows(named=True)
    }
    assert transitions == {
        ("allow", "green", "deny", "red"): 3,  # small, both, past
        ("review", "red", "deny", "red"): 1,  # big
    }
    assert report.by_agent_type["agent_type"].to_list() == ["FinanceAgent"] * 2
    assert set(report.examples["event_id"]) == expected
    assert report.examples["new_reasons"].str.contains("refunds are frozen").all()
    assert report.zones["candidate"]["red"] == report.zones["current"]["red"] + 3
    assert report.current_revision == load_policies(paths).revision != report.candidate_revision
    assert report.evaluations["candidate"] == report.evaluations["current"]
    as_dict = report.to_dict()
    assert (as_dict["evaluated"], as_dict["changed"]) == (report.evaluated, report.changed)
    json.dumps(as_dict)  # JSON-ready

    assert _versions(paths) == before  # a back-test writes nothing


def test_backtest_thresholds_move_exactly_the_calls_with_enough_history(
    paths: Paths, fleet: Fleet, tmp_path: Path
) -> None:
    # The ledger.query calls with >= 20 uses in their window (on DAY: 25, overridden 24%,
    # failing 20%) are yellow for being often overridden; a looser override threshold frees them.
    looser = _candidate(
        tmp_path / "looser", "", replace=("max_override_rate := 0.2", "max_override_rate := 0.5")
    )
    report = backtest(paths, looser, FIRST, DAY)
    expected = _well_used(fleet)
    assert {fleet.named[n] for n in ("today_1", "today_2", "today_3")} < expected
    assert report.changed == len(expected) == 9
    assert set(report.examples["event_id"]) < expected
    assert report.examples.height == 3  # examples per transition
    assert report.transitions.to_dicts() == [
        {"old_decision": "review", "old_zone": "yellow",
         "new_decision": "allow", "new_zone": "green", "count": len(expected)},
    ]  # fmt: skip
    assert report.by_agent_type["agent_type"].to_list() == ["FinanceAgent"]

    # With a failure threshold of 10% as well, the same calls stay yellow (often failing: 20%
    # to 22% of their uses failed).
    both = _candidate(
        tmp_path / "both", "", replace=("max_failure_rate := 0.3", "max_failure_rate := 0.1")
    )
    source = (both / "agentops.rego").read_text()
    (both / "agentops.rego").write_text(
        source.replace("max_override_rate := 0.2", "max_override_rate := 0.5")
    )
    report = backtest(paths, both, FIRST, DAY)
    assert (report.changed, report.candidate_error) == (0, None)
    assert report.current_revision != report.candidate_revision


def test_a_candidate_that_does_not_compile_denies_everything(
    paths: Paths, fleet: Fleet, tmp_path: Path
) -> None:
    before = _versions(paths)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "agentops.rego").write_text(
        'package agentops.governance\n\nresult := {\n  "decision": "allow",\n'
    )

    report = backtest(paths, broken, FIRST, DAY)

    assert report.candidate_error is not None and "agentops.rego" in report.candidate_error
    already_denied = {fleet.named[n] for n in ("rogue", "refund_vault", "restricted")}
    assert report.evaluated == len(fleet.actions())
    assert report.changed == len(fleet.actions()) - len(already_denied)
    assert report.zones["candidate"] == {"green": 0, "yellow": 0, "red": report.evaluated}
    assert set(report.transitions["new_decision"]) == {"deny"}
    assert set(report.transitions["new_zone"]) == {"red"}
    assert report.transitions["count"].sum() == report.changed
    assert report.to_dict()["candidate_error"] == report.candidate_error
    assert _versions(paths) == before


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_policy_decide_prints_the_decision_as_json(paths: Paths, fleet: Fleet) -> None:
    document = {"agent_id": "finance-agent-01", "agent_type": "FinanceAgent",
                "kind": "tool_call", "action": "iam.create_key"}  # fmt: skip
    result = CliRunner().invoke(
        main, ["policy", "decide", "--input", "-"], input=json.dumps(document)
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["decision"], printed["zone"]) == ("deny", "red")
    assert printed["rules"] == ["tool_not_in_capabilities"]
    assert printed["reasons"] and all(isinstance(r, str) for r in printed["reasons"])
    assert printed["revision"] == load_policies(paths).revision
    assert printed["input"]["context"]["capabilities"]["max_amount_usd"] == 10000


def test_cli_policy_decide_rejects_input_that_is_not_json(paths: Paths) -> None:
    result = CliRunner().invoke(main, ["policy", "decide", "--input", "-"], input="refund please")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert "--input" in error and "not JSON" in error and error.endswith(".")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_policy_backtest_json_and_a_reversed_range(
    paths: Paths, fleet: Fleet, tmp_path: Path
) -> None:
    folder = _candidate(tmp_path / "frozen", FROZEN_REFUNDS)
    result = CliRunner().invoke(
        main, ["policy", "backtest", "--policies", str(folder), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["evaluated"], report["changed"]) == (len(fleet.actions()), 4)
    assert (report["from"], report["to"]) == (FIRST.isoformat(), DAY.isoformat())

    result = CliRunner().invoke(
        main,
        ["policy", "backtest", "--policies", str(folder), "--from", DAY.isoformat(),
         "--to", EARLY.isoformat()],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"--to {EARLY} is before --from {DAY}." in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        ("agentops.rego", "agentops.rego:"),
        ("capabilities.yaml", "capabilities.yaml, line 3"),
    ],
)
def test_judging_with_broken_policies_stops_naming_the_line_and_writes_nothing(
    paths: Paths,
    fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    broken: str,
    named: str,
) -> None:
    refresh_decisions(paths, DAY, DAY)
    before = _versions(paths)
    folder = tmp_path / "policies"
    if broken == "agentops.rego":
        _candidate(folder, "\nresult := if {\n")
    else:
        folder.mkdir()
        (folder / "capabilities.yaml").write_text(
            "agent_types:\n  SupportAgent:\n    tool: [kb.search]\n"
        )
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))

    with pytest.raises(PolicyBundleError, match="cannot judge") as raised:
        refresh_decisions(paths, DAY, DAY)

    assert named in str(raised.value)
    assert _versions(paths) == before  # no log of past actions all "denied" by a typo
