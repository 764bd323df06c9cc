"""The decision gate (service/gate.py) on real Delta tables, real rego-cpp and a real control file.

One home is built per module and copied for each test: events ingested through
``ingest_landing`` (a history that makes ``ledger.query`` fail too often), a budget breach of
SupportAgent today, critical drift of OpsAgent (so the type is ``human_only``), a capability
violation of ``fa-2`` (so it is ``sandboxed``), then ``refresh_autonomy`` for today, which
writes the control file the gate reads.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from agentops_assets.control import overrides as control_overrides
from agentops_assets.control.output import control_path
from agentops_assets.control.refresh import refresh_autonomy
from agentops_assets.drift.tables import DRIFT_FINDINGS, FINDINGS_SCHEMA
from agentops_assets.finops.compliance import COMPLIANCE_SCHEMA
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.audit import ledger as audit_ledger
from agentops_assets.governance.capabilities import VIOLATION_SCHEMA
from agentops_assets.governance.engine import default_policy_folder
from agentops_assets.governance.refresh import refresh_decisions, refresh_ledger
from agentops_assets.governance.review import decide as review_decide
from agentops_assets.governance.review import reviews
from agentops_assets.governance.tables import (
    CAPABILITY_VIOLATIONS,
    DECISION_SCHEMA,
    POLICY_DECISIONS,
    REVIEW_QUEUE,
)
from agentops_assets.service.gate import Gate, GateError
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl

TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)
CALLER = "runtime-token"


def _at(day: dt.date, hour: int = 9, minute: int = 0) -> str:
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00.000000Z"


def _events() -> list[dict[str, object]]:
    """Agents fa-1, fa-2 (FinanceAgent), ops-1 (OpsAgent), sa-1 (SupportAgent); 20 uses of
    ledger.query in the 10 days before today, 8 of them failing (40 % > 30 %)."""
    records = [
        event(1, agent_id="fa-1", agent_type="FinanceAgent", ts=_at(YESTERDAY)),
        event(2, agent_id="fa-2", agent_type="FinanceAgent", ts=_at(YESTERDAY)),
        event(3, agent_id="ops-1", agent_type="OpsAgent", ts=_at(YESTERDAY)),
        event(4, agent_id="sa-1", agent_type="SupportAgent", ts=_at(YESTERDAY)),
    ]
    for i in range(20):
        day = TODAY - dt.timedelta(days=1 + i % 10)
        records.append(
            event(
                100 + i,
                agent_id="fa-1",
                agent_type="FinanceAgent",
                kind="tool_call",
                action="ledger.query",
                status="error" if i < 8 else "ok",
                ts=_at(day, 10, i),
            )
        )
    return records


def _append(paths: Paths, table: str, schema: dict, row: dict) -> None:
    frame = pl.DataFrame([row], schema=schema)
    lake.append(paths.table_uri(table), frame.cast(dict(schema)), partition_by=["day"])


def _build(paths: Paths) -> None:
    write_jsonl(paths.landing / "events.jsonl", _events())
    assert ingest_landing(paths).records == 24
    _append(
        paths,
        BUDGET_COMPLIANCE,
        COMPLIANCE_SCHEMA,
        {
            "day": TODAY, "budget_id": "b-support-day", "agent_type": "SupportAgent",
            "provider": None, "model": None, "period": "day", "period_start": TODAY,
            "period_end": TODAY, "spend_usd": 120.0, "cap_usd": 100.0, "warn_at": 0.8,
            "pct_of_cap": 120.0, "burn_rate_usd_per_day": 120.0, "forecast_usd": 120.0,
            "status": "breach", "detail": "over", "evaluated_at": dt.datetime.now(dt.UTC),
        },
    )  # fmt: skip
    _append(
        paths,
        DRIFT_FINDINGS,
        FINDINGS_SCHEMA,
        {
            "day": TODAY, "agent_type": "OpsAgent", "agent_id": None, "metric": "confidence",
            "baseline_value": 0.9, "current_value": 0.5, "change_pct": -44.4, "test": "ks",
            "statistic": 0.6, "p_value": 0.0001, "effect_size": 1.2, "severity": "critical",
            "detail": "confidence fell", "finding_id": "df-ops",
        },
    )  # fmt: skip
    _append(
        paths,
        CAPABILITY_VIOLATIONS,
        dict(VIOLATION_SCHEMA),
        {
            "day": TODAY, "event_id": "ev-v1", "trace_id": "tr-v1", "agent_id": "fa-2",
            "agent_type": "FinanceAgent", "action": "iam.create_key", "rule": "not a tool",
        },
    )  # fmt: skip
    refresh_autonomy(paths)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("gate") / "home"
    _build(Paths(home=home, lake_uri=str(home / "lake")))
    return home


@pytest.fixture
def home(paths: Paths, template: Path) -> Paths:
    shutil.copytree(template, paths.home)
    return paths


@pytest.fixture
def gate(home: Paths):
    opened = Gate(home, check_interval_s=3600)  # the tests call refresh() themselves
    yield opened
    opened.close()


def action(agent_id: str, agent_type: str, tool: str) -> dict[str, object]:
    return {"agent_id": agent_id, "agent_type": agent_type, "kind": "tool_call", "action": tool}


def _decisions(paths: Paths) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(POLICY_DECISIONS))


# 1. Decisions: allow, review, deny, with the context the platform knows.


def test_a_green_action_is_allowed_with_its_context(gate):
    answer = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert (answer["decision"], answer["zone"], answer["rules"]) == ("allow", "green", [])
    assert answer["error"] is None and "review_id" not in answer
    assert len(answer["revision"]) == 64
    assert answer["autonomy"]["state"] == "normal" and answer["autonomy"]["scope"] == "agent"
    assert answer["failover_route"]["route"] == "primary"
    assert answer["budget_status"] in (None, "ok")


def test_an_often_failing_action_is_yellow_from_the_30_day_statistics(gate):
    answer = gate.decide(action("fa-1", "FinanceAgent", "ledger.query"), caller=CALLER)
    assert (answer["decision"], answer["zone"], answer["rules"]) == (
        "review",
        "yellow",
        ["often_failing"],
    )
    assert "40%" in answer["reasons"][0]
    assert answer["review_id"].startswith("rv-")


def test_a_budget_breach_is_yellow_and_reported(gate):
    answer = gate.decide(action("sa-1", "SupportAgent", "kb.search"), caller=CALLER)
    assert (answer["decision"], answer["zone"], answer["rules"]) == (
        "review",
        "yellow",
        ["budget_breach"],
    )
    assert answer["budget_status"] == "breach"


def test_an_amount_above_the_types_limit_is_red(gate):
    document = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 50_000}
    answer = gate.decide(document, caller=CALLER)
    assert (answer["decision"], answer["zone"], answer["rules"]) == (
        "review",
        "red",
        ["amount_above_max"],
    )
    assert answer["obligations"]["approvals"] == 1


def test_a_tool_outside_the_registry_is_denied(gate):
    answer = gate.decide(action("fa-1", "FinanceAgent", "iam.create_access_key"), caller=CALLER)
    assert (answer["decision"], answer["zone"]) == ("deny", "red")
    assert answer["rules"] == ["tool_not_in_capabilities"]
    assert "review_id" not in answer


def test_a_human_only_type_needs_an_approval_first(gate):
    answer = gate.decide(action("ops-1", "OpsAgent", "prometheus.query"), caller=CALLER)
    assert (answer["decision"], answer["zone"]) == ("review", "red")
    assert "autonomy_human_only" in answer["rules"]
    assert answer["autonomy"]["state"] == "human_only"
    assert answer["failover_route"]["route"] == "human_review"


def test_a_sandboxed_agent_may_only_call_read_only_tools(gate):
    denied = gate.decide(action("fa-2", "FinanceAgent", "payments.refund"), caller=CALLER)
    assert (denied["decision"], denied["rules"]) == ("deny", ["autonomy_sandboxed"])
    allowed = gate.decide(action("fa-2", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert allowed["decision"] == "allow"
    assert allowed["autonomy"]["state"] == "sandboxed"
    assert "payments.refund" not in allowed["autonomy"]["allowed_tools"]


def test_a_frozen_agent_is_denied_and_cannot_claim_otherwise(home):
    control_overrides.set_state(
        home, "FinanceAgent", "fa-1", "frozen", reason="odd refunds", by="alice"
    )
    refresh_autonomy(home)
    with_gate = Gate(home)
    try:
        document = {
            **action("fa-1", "FinanceAgent", "invoice.lookup"),
            "context": {"autonomy": {"state": "normal"}, "ticket": "T-1"},
        }
        answer = with_gate.decide(document, caller=CALLER)
        assert (answer["decision"], answer["rules"]) == ("deny", ["autonomy_frozen"])
        assert answer["failover_route"]["route"] == "freeze"
        with_gate.flush()
        logged = json.loads(_decisions(home)["input"][0])
        assert logged["context"]["autonomy"]["state"] == "frozen"  # the gate's, not the agent's
        assert logged["context"]["ticket"] == "T-1"  # other context keys are kept
        assert logged["caller"] == CALLER
    finally:
        with_gate.close()


def test_an_agent_claiming_another_type_is_denied(gate):
    answer = gate.decide(action("sa-1", "FinanceAgent", "payments.refund"), caller=CALLER)
    assert answer["decision"] == "deny"
    assert "agent_type_mismatch" in answer["rules"]


def test_the_control_output_is_enforced_under_policies_that_ignore_it(home, tmp_path, monkeypatch):
    folder = tmp_path / "lenient"
    folder.mkdir()
    (folder / "allow.rego").write_text(
        "package agentops.governance\n\n"
        'result := {"decision": "allow", "zone": "green", "reasons": ["ok"], "rules": []}\n'
    )
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
    with_gate = Gate(home)
    try:
        sandboxed = with_gate.decide(action("fa-2", "FinanceAgent", "erp.post_journal"), caller="t")
        human = with_gate.decide(action("ops-1", "OpsAgent", "kb.search"), caller="t")
        free = with_gate.decide(action("fa-1", "FinanceAgent", "erp.post_journal"), caller="t")
    finally:
        with_gate.close()
    assert (sandboxed["decision"], sandboxed["rules"]) == ("deny", ["autonomy_sandboxed"])
    assert (human["decision"], human["zone"], human["rules"]) == (
        "review",
        "red",
        ["autonomy_human_only"],
    )
    assert human["obligations"]["approvals"] == 1
    assert (free["decision"], free["reasons"]) == ("allow", ["ok"])


# 2. Fail closed.


def test_a_policy_that_does_not_compile_denies_everything(home, tmp_path, monkeypatch):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "broken.rego").write_text("package agentops.governance\n\nresult := {\n")
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
    with_gate = Gate(home)
    try:
        answer = with_gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller="t")
    finally:
        with_gate.close()
    assert (answer["decision"], answer["zone"]) == ("deny", "red")
    assert "does not compile" in answer["reasons"][0] and "broken.rego" in answer["error"]


def test_a_corrupt_control_file_denies_and_agent_state_says_why(gate, home):
    before = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert before["decision"] == "allow"
    control_path(home).write_text('{"agents": [1, 2')
    answer = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert (answer["decision"], answer["rules"]) == ("deny", ["gate_error"])
    assert "control file" in answer["error"]
    with pytest.raises(GateError, match="not valid JSON"):
        gate.agent_state("fa-1")


def test_an_unreadable_lake_table_denies(gate, home):
    log = Path(home.table_uri(BUDGET_COMPLIANCE)) / "_delta_log"
    last = max(int(commit.stem) for commit in log.glob("*.json"))
    (log / f"{last + 1:020d}.json").write_text("not json")  # a torn commit
    assert gate.refresh()
    answer = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert (answer["decision"], answer["zone"]) == ("deny", "red")
    assert "cannot read its context" in answer["error"]


@pytest.mark.parametrize("document", [[1, 2], "x", None, {"agent_id": 7}])
def test_a_document_that_is_not_an_action_is_denied(gate, document):
    answer = gate.decide(document, caller=CALLER)
    assert (answer["decision"], answer["zone"]) == ("deny", "red")


# 3. Reviews.


def test_a_review_item_exists_at_once_and_shows_the_approval(gate, home):
    document = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
    answer = gate.decide({**document, "trace_id": "tr-gate-1"}, caller=CALLER)
    item = gate.review(answer["review_id"])  # no flush: committed before the answer
    assert item is not None
    assert (item["state"], item["source"], item["zone"]) == ("pending", "gate", "red")
    assert (item["decision_id"], item["trace_id"]) == (answer["decision_id"], "tr-gate-1")
    review_decide(
        home,
        answer["review_id"],
        "approve",
        reviewer="alice",
        rationale="refund agreed with the customer",
        correction="cap refunds at 15k",
    )
    item = gate.review(answer["review_id"])
    assert (item["state"], item["decided_by"], item["rationale"], item["correction"]) == (
        "approved",
        "alice",
        "refund agreed with the customer",
        "cap refunds at 15k",
    )
    assert gate.review("rv-0000000000000000") is None
    assert gate.review("../etc/passwd") is None


def test_asking_twice_about_one_event_keeps_one_review_item(gate, home):
    document = {**action("ops-1", "OpsAgent", "k8s.rollout_restart"), "event_id": "ev-ask-1"}
    first = gate.decide(document, caller=CALLER)
    second = gate.decide(document, caller=CALLER)
    assert first["review_id"] == second["review_id"]
    assert first["decision_id"] != second["decision_id"]
    # A reviewer (another writer of the queue) decides it; asked again, the same item answers.
    review_decide(home, first["review_id"], "reject", reviewer="carol", rationale="no restarts")
    third = gate.decide(document, caller=CALLER)
    assert third["review_id"] == first["review_id"]
    assert gate.review(third["review_id"])["state"] == "rejected"
    items = reviews(home).filter(pl.col("event_id") == "ev-ask-1")
    assert items.height == 1


def test_the_gate_compacts_the_small_files_it_writes(gate, home, monkeypatch):
    from deltalake import DeltaTable

    monkeypatch.setattr(gate._review_table, "compact_every", 5)
    document = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
    answers = []
    for _ in range(12):  # one commit each
        answers.append(gate.decide(document, caller=CALLER))
        gate.flush()
    queue = DeltaTable(home.table_uri(REVIEW_QUEUE))
    assert len(queue.file_uris()) <= 3  # 12 commits: compacted after the 5th and the 10th
    assert {a["review_id"] for a in answers} <= set(reviews(home)["review_id"])


def _held_reviews(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """A slow lake: the gate's review commits wait until the event returned is set."""
    commit = gate._reviews._commit
    release = threading.Event()

    def slow(items):
        release.wait(30)
        commit(items)

    monkeypatch.setattr(gate._reviews, "_commit", slow)
    return release


def _queue_ids(paths: Paths) -> list[str]:
    if not lake.table_exists(paths.table_uri(REVIEW_QUEUE)):
        return []
    return pl.read_delta(paths.table_uri(REVIEW_QUEUE))["review_id"].to_list()


def test_a_review_answer_does_not_wait_for_the_lake(gate, home, monkeypatch):
    release = _held_reviews(gate, monkeypatch)
    document = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
    began = time.monotonic()
    answer = gate.decide({**document, "trace_id": "tr-slow"}, caller=CALLER)
    assert time.monotonic() - began < 0.5  # journalled and fsynced, not committed
    assert answer["review_id"] not in _queue_ids(home)
    item = gate.review(answer["review_id"])  # from memory meanwhile
    assert (item["state"], item["source"], item["decision_id"], item["trace_id"]) == (
        "pending",
        "gate",
        answer["decision_id"],
        "tr-slow",
    )
    # A reviewer that is quicker than the lake waits for the item instead of "unknown id".
    threading.Timer(0.5, release.set).start()
    outcome = review_decide(home, answer["review_id"], "reject", reviewer="dan", rationale="no")
    assert outcome.review["state"] == "rejected"
    assert gate.review(answer["review_id"])["state"] == "rejected"
    assert item["created_at"] == gate.review(answer["review_id"])["created_at"]


def test_a_review_item_is_in_the_queue_within_a_second(gate, home):
    document = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
    answer = gate.decide(document, caller=CALLER)
    began = time.monotonic()
    while answer["review_id"] not in _queue_ids(home):
        assert time.monotonic() - began < 1.0, "the review item was not committed within 1 s"
        time.sleep(0.02)
    gate.flush()
    assert gate.written["journal_outstanding"] == 0
    journal = list((home.home / "service" / "gate-journal").glob("*.jsonl"))
    assert [path.stat().st_size for path in journal] == [0]  # all committed: emptied


def test_a_journal_that_cannot_be_written_denies(gate):
    import os

    current = gate._journal._current
    os.close(current.fd)
    current.fd = os.open("/dev/full", os.O_WRONLY)  # writes now fail: no space left
    answer = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert (answer["decision"], answer["zone"]) == ("deny", "red")
    assert "could not be journalled" in answer["error"]
    # The next line goes to a new journal file: the gate answers again.
    answer = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert answer["decision"] == "allow"


def test_a_live_gates_journal_is_not_replayed_by_another(gate, home, monkeypatch):
    release = _held_reviews(gate, monkeypatch)
    document = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
    answer = gate.decide(document, caller=CALLER)
    other = Gate(home, check_interval_s=3600)
    try:
        assert other.replayed == 0
        assert other.review(answer["review_id"]) is None  # not its item; not committed yet
    finally:
        other.close()
    release.set()
    gate.close()
    assert _queue_ids(home).count(answer["review_id"]) == 1
    assert list((home.home / "service" / "gate-journal").glob("*")) == [
        home.home / "service" / "gate-journal" / "recover.lock"
    ]


_CHILD = """
import os, sys, threading, time
from agentops_assets.service.gate import Gate
from agentops_assets.storage.config import Paths

gate = Gate(Paths.from_env(), check_interval_s=3600)
commit = gate._reviews._commit
def slow(items):  # a slow lake: items wait in the journal
    time.sleep(0.3)
    commit(items)
gate._reviews._commit = slow
lock = threading.Lock()
def client(n):
    for i in range(10_000):
        document = {"agent_id": "fa-1", "agent_type": "FinanceAgent", "kind": "tool_call"}
        if i % 2:
            document |= {"action": "payments.refund", "amount_usd": 20_000}
            if i % 4 == 1:
                document["event_id"] = f"ev-kill-{n}-{i}"
        else:
            document["action"] = "invoice.lookup"
        answer = gate.decide(document, caller="kill")
        with lock:
            print(answer["decision_id"], answer.get("review_id") or "-", flush=True)
threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_sigkill_between_journal_and_lake_loses_and_duplicates_nothing(home):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "AGENTOPS_HOME": str(home.home)}
    env.pop("AGENTOPS_LAKE_URI", None)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE, cwd=Path.cwd()
    )
    answered: list[tuple[str, str]] = []
    try:
        assert child.stdout is not None
        while len(answered) < 120:
            line = child.stdout.readline()
            assert line, "the child stopped before answering"
            decision_id, item = line.decode().split()
            answered.append((decision_id, item))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    # What it printed after the lines read counts as answered too (it was answered).
    assert child.stdout is not None
    for line in child.stdout.read().decode().split("\n")[:-1]:  # whole lines only
        decision_id, item = line.split()
        answered.append((decision_id, item))
    decisions = {d for d, _ in answered}
    items = {i for _, i in answered if i != "-"}
    folder = home.home / "service" / "gate-journal"
    segments = sorted(folder.glob("*.jsonl"))
    assert segments, "the killed gate left no journal"
    with segments[-1].open("ab") as torn:
        torn.write(b'{"row": {"decision_id": "torn')  # a write cut short by the kill
    stored = (
        set(_decisions(home)["decision_id"])
        if lake.table_exists(home.table_uri(POLICY_DECISIONS))
        else set()
    )
    assert decisions - stored and items - set(_queue_ids(home)), "nothing left to replay"

    for _ in range(2):  # a second start replays nothing again
        restarted = Gate(home, check_interval_s=3600)
        restarted.close()
        logged = _decisions(home)["decision_id"].to_list()
        assert decisions <= set(logged) and len(logged) == len(set(logged))
        queued = _queue_ids(home)
        assert items <= set(queued) and len(queued) == len(set(queued))
    assert list(folder.glob("*.jsonl")) == []


# 4. The log: policy_decisions, the ledger, and the pipeline.


def test_every_decision_is_logged_and_yellow_and_red_reach_the_ledger(gate, home):
    answers = [
        gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER),
        gate.decide(action("sa-1", "SupportAgent", "kb.search"), caller=CALLER),
        gate.decide(action("ops-1", "OpsAgent", "kb.search"), caller=CALLER),
        gate.decide(action("fa-1", "FinanceAgent", "iam.create_access_key"), caller=CALLER),
    ]
    gate.close()  # flushes
    logged = _decisions(home).sort("judged_at")
    assert logged.schema == DECISION_SCHEMA
    assert logged["decision_id"].to_list() == [a["decision_id"] for a in answers]
    assert logged["zone"].to_list() == ["green", "yellow", "red", "red"]
    assert logged["decision"].to_list() == ["allow", "review", "review", "deny"]
    assert set(logged["source"]) == {"gate"} and set(logged["day"]) == {TODAY}
    first = logged.row(0, named=True)
    assert first["path"] == "agentops/governance/result"
    assert json.loads(first["bundles"]) == {"agentops": {"revision": answers[0]["revision"]}}
    assert json.loads(first["result"])["decision"] == "allow"
    assert json.loads(first["input"])["context"]["capabilities"]["max_amount_usd"] == 10000

    ledger = audit_ledger(home)
    entries = ledger.entries(kind="policy_decision")
    payloads = [json.loads(p) for p in entries["payload"]]
    assert sorted(p["decision_id"] for p in payloads) == sorted(
        a["decision_id"] for a in answers[1:]
    )
    assert set(entries["actor"]) == {"agentops.gate"}
    assert {p["caller"] for p in payloads} == {CALLER}
    assert ledger.verify().ok


def test_the_pipeline_rejudging_today_keeps_the_gates_rows(gate, home):
    answers = [
        gate.decide(action("sa-1", "SupportAgent", "kb.search"), caller=CALLER),
        gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER),
    ]
    gate.flush()
    first = TODAY - dt.timedelta(days=10)
    judged = refresh_decisions(home, first, TODAY)
    assert judged.decisions.height == 20  # the ledger.query history
    stored = _decisions(home)
    online = stored.filter(pl.col("source") == "gate")
    assert sorted(online["decision_id"]) == sorted(a["decision_id"] for a in answers)
    assert stored.filter(pl.col("source") == "events").height == 20
    # Twice: nothing duplicated, nothing lost.
    refresh_decisions(home, first, TODAY)
    assert _decisions(home).height == 22
    # The ledger catch-up does not record the gate's yellow decision a second time.
    update = refresh_ledger(home, first, TODAY)
    assert update.report.ok
    subjects = audit_ledger(home).entries(kind="policy_decision")["subject"].to_list()
    assert subjects.count(answers[0]["event_id"]) == 1


def test_a_table_from_before_the_source_column_gets_it(home):
    old = pl.DataFrame(
        [
            {
                "day": YESTERDAY, "decision_id": "d-old", "path": "p", "input": "{}",
                "result": "{}", "bundles": "{}", "timestamp": dt.datetime.now(dt.UTC),
                "revision": "r", "event_id": "ev-old", "trace_id": None, "agent_id": "fa-1",
                "agent_type": "FinanceAgent", "kind": "tool_call", "action": "x",
                "decision": "allow", "zone": "green", "reasons": [], "rules": [],
                "approvals_required": 0, "sample_rate": 0.0, "error": None,
                "judged_at": dt.datetime.now(dt.UTC),
            }
        ],
        schema={k: v for k, v in DECISION_SCHEMA.items() if k != "source"},
    )  # fmt: skip
    lake.append(home.table_uri(POLICY_DECISIONS), old, partition_by=["day"])
    with_gate = Gate(home)
    with_gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    with_gate.close()
    stored = _decisions(home)
    assert dict(zip(stored["decision_id"], stored["source"], strict=True))["d-old"] is None
    assert stored.filter(pl.col("source") == "gate").height == 1
    refresh_decisions(home, YESTERDAY, YESTERDAY)  # the pipeline replaces the old row
    assert "d-old" not in _decisions(home)["decision_id"].to_list()


def test_concurrent_decisions_lose_no_row(gate, home):
    documents = [
        action("fa-1", "FinanceAgent", "invoice.lookup"),
        action("sa-1", "SupportAgent", "kb.search"),
        action("fa-1", "FinanceAgent", "iam.create_access_key"),
        {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000},
    ]
    answers: list[dict] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(15):
            answer = gate.decide(documents[(n + i) % len(documents)], caller=f"c{n}")
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gate.close()
    assert len(answers) == 180 and all(a["error"] is None for a in answers)
    stored = _decisions(home)
    assert sorted(stored["decision_id"]) == sorted(a["decision_id"] for a in answers)
    review_ids = {a["review_id"] for a in answers if a["decision"] == "review"}
    assert len(review_ids) == 90
    queued = pl.read_delta(home.table_uri(REVIEW_QUEUE))
    assert review_ids <= set(queued["review_id"])
    # Group commit: far fewer commits than decisions.
    assert lake_versions(home, POLICY_DECISIONS) < 180


def lake_versions(paths: Paths, table: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(paths.table_uri(table)).version() + 1


# 5. Agent state and the cache.


def test_agent_state_follows_a_supervisors_set_at_once(gate, home):
    state = gate.agent_state("fa-1")
    assert (state["state"], state["scope"], state["agent_type"]) == (
        "normal",
        "agent",
        "FinanceAgent",
    )
    assert state["failover_route"]["route"] == "primary"
    assert gate.agent_state("nobody") is None
    assert gate.agent_state("OpsAgent")["state"] == "human_only"

    control_overrides.set_state(home, "FinanceAgent", "fa-1", "frozen", reason="audit", by="bob")
    refresh_autonomy(home)  # what `agentops control set` does
    state = gate.agent_state("fa-1")
    assert (state["state"], state["override"], state["allowed_tools"]) == ("frozen", True, [])
    answer = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert (answer["decision"], answer["autonomy"]["state"]) == ("deny", "frozen")


def test_a_new_agent_inherits_its_types_state(gate):
    answer = gate.decide(action("ops-9", "OpsAgent", "prometheus.query"), caller=CALLER)
    assert answer["autonomy"]["scope"] == "agent_type"
    assert answer["decision"] == "review"
    state = gate.agent_state("ops-9")
    assert (state["state"], state["scope"]) == ("human_only", "agent_type")


def test_the_cache_reloads_when_the_lake_changes(gate, home):
    before = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert before["zone"] == "green"
    _append(
        home,
        BUDGET_COMPLIANCE,
        COMPLIANCE_SCHEMA,
        {
            "day": TODAY, "budget_id": "b-fin-day", "agent_type": "FinanceAgent",
            "provider": None, "model": None, "period": "day", "period_start": TODAY,
            "period_end": TODAY, "spend_usd": 120.0, "cap_usd": 100.0, "warn_at": 0.8,
            "pct_of_cap": 120.0, "burn_rate_usd_per_day": 120.0, "forecast_usd": 120.0,
            "status": "breach", "detail": "over", "evaluated_at": dt.datetime.now(dt.UTC),
        },
    )  # fmt: skip
    assert gate.refresh()
    assert not gate.refresh()  # nothing changed since
    after = gate.decide(action("fa-1", "FinanceAgent", "invoice.lookup"), caller=CALLER)
    assert (after["zone"], after["rules"], after["budget_status"]) == (
        "yellow",
        ["budget_breach"],
        "breach",
    )


def test_the_background_thread_sees_a_policy_change_within_its_interval(
    home, tmp_path, monkeypatch
):
    folder = tmp_path / "policies"
    shutil.copytree(default_policy_folder(), folder)
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
    watching = Gate(home, check_interval_s=0.1)
    try:
        document = action("fa-1", "FinanceAgent", "invoice.lookup")
        assert watching.decide(document, caller=CALLER)["decision"] == "allow"
        rego = folder / "agentops.rego"
        rego.write_text(
            rego.read_text().replace("required_fields := [", 'required_fields := ["x", ')
        )
        deadline = time.monotonic() + 10
        while watching.decide(document, caller=CALLER)["decision"] == "allow":
            assert time.monotonic() < deadline, "the policy change was not picked up"
            time.sleep(0.05)
        answer = watching.decide(document, caller=CALLER)
        assert (answer["decision"], answer["rules"]) == ("deny", ["malformed_input"])
    finally:
        watching.close()


# 6. Over HTTP, through the service app.


def test_decide_review_and_state_over_http(home):
    import httpx

    from tests.service_server import bearer, role_tokens, running_service

    tokens = role_tokens(home)
    with running_service(home, gate=Gate(home)) as url:
        document = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
        reply = httpx.post(f"{url}/v1/decide", json=document, headers=bearer(tokens["admin"]))
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert (answer["decision"], answer["zone"]) == ("review", "red")
        item = httpx.get(
            f"{url}/v1/reviews/{answer['review_id']}", headers=bearer(tokens["viewer"])
        )
        assert item.status_code == 200, item.text
        assert (item.json()["state"], item.json()["decision_id"]) == (
            "pending",
            answer["decision_id"],
        )
        state = httpx.get(f"{url}/v1/agents/fa-2/state", headers=bearer(tokens["viewer"]))
        assert (state.status_code, state.json()["state"]) == (200, "sandboxed")
    # Stopping the service closed the gate, which flushed its log.
    assert _decisions(home)["decision_id"].to_list() == [answer["decision_id"]]


def test_decide_over_http_reports_its_phases_and_answers_a_known_action_on_the_loop(home):
    import httpx

    from tests.service_server import bearer, role_tokens, running_service

    tokens = role_tokens(home)
    document = action("fa-1", "FinanceAgent", "invoice.lookup")
    with running_service(home, gate=Gate(home)) as url:
        replies = [
            httpx.post(f"{url}/v1/decide", json=document, headers=bearer(tokens["admin"]))
            for _ in range(2)
        ]
        review = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
        reviews = [
            httpx.post(f"{url}/v1/decide", json=review, headers=bearer(tokens["admin"]))
            for _ in range(2)
        ]
    # A memoized review is decided on the loop; its thread only waits for the fsync.
    assert [reply.json()["decision"] for reply in reviews] == ["review", "review"]
    assert all(reply.json()["review_id"] in _queue_ids(home) for reply in reviews)
    later = _server_timing(reviews[1].headers["server-timing"])
    assert {"queue", "rego", "journal", "fsync", "handler"} <= later.keys()
    logged = set(_decisions(home)["decision_id"])
    assert {reply.json()["decision_id"] for reply in reviews} <= logged
    phases = [_server_timing(reply.headers["server-timing"]) for reply in replies]
    assert [reply.json()["decision"] for reply in replies] == ["allow", "allow"]
    # The first is evaluated on a gate thread (it waited in its queue), the second is memoized
    # and answered on the event loop: no queue.
    assert {"queue", "context", "rego", "journal", "handoff", "handler"} <= phases[0].keys()
    assert "queue" not in phases[1] and {"rego", "journal", "handler"} <= phases[1].keys()
    assert all(0 <= seconds < 30 for found in phases for seconds in found.values())
    assert {reply.json()["decision_id"] for reply in replies} <= logged


def _server_timing(value: str) -> dict[str, float]:
    found = {}
    for part in value.split(","):
        name, _, duration = part.strip().partition(";dur=")
        found[name] = float(duration) / 1000
    return found


# 7. Answers that wait for nothing, the writers, and the cache under the gate's own commits.


def test_decide_now_answers_a_memoized_action_and_logs_it(gate, home):
    document = action("fa-1", "FinanceAgent", "invoice.lookup")
    assert gate.decide_now(document, caller=CALLER) is None  # not evaluated yet: it would wait
    assert gate.written["journal_outstanding"] == 0  # and nothing was logged
    first = gate.decide(document, caller=CALLER)
    timings: dict[str, float] = {}
    second = gate.decide_now(document, caller=CALLER, timings=timings)
    assert second is not None
    assert (second["decision"], second["zone"], second["revision"]) == (
        first["decision"],
        first["zone"],
        first["revision"],
    )
    assert second["decision_id"] != first["decision_id"]
    assert {"context", "rego", "journal", "handoff"} <= timings.keys()
    assert "fsync" not in timings  # an allow does not wait for the disk
    gate.close()
    assert sorted(_decisions(home)["decision_id"]) == sorted(
        [first["decision_id"], second["decision_id"]]
    )


def test_decide_now_leaves_new_agents_unevaluated_actions_and_durable_gates_to_decide(gate, home):
    stranger = action("fa-9", "FinanceAgent", "invoice.lookup")
    assert gate.decide_now(stranger, caller=CALLER) is None  # its context is a lake read
    assert gate.decide_now([1, 2], caller=CALLER) is None  # evaluated to be denied: waits
    refund = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 31_337}
    assert gate.decide_now(refund, caller=CALLER) is None  # a new amount: evaluated
    gate.close()
    assert not lake.table_exists(home.table_uri(POLICY_DECISIONS))  # nothing was logged
    durable = Gate(home, durable=True)
    try:
        green = action("fa-1", "FinanceAgent", "invoice.lookup")
        durable.decide(green, caller=CALLER)
        assert durable.decide_now(green, caller=CALLER) is None  # every answer is fsynced
    finally:
        durable.close()


def test_decide_now_answers_a_review_only_once_its_line_is_fsynced(gate, home):
    from agentops_assets.service.gate import AnswerAfterFsync

    review = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
    first = gate.decide(review, caller=CALLER)
    human = action("ops-1", "OpsAgent", "kb.search")
    gate.decide(human, caller=CALLER)
    assert gate.flush()
    later = [gate.decide_now(review, caller=CALLER), gate.decide_now(human, caller=CALLER)]
    assert all(isinstance(now, AnswerAfterFsync) for now in later)
    syncs = gate.written["journal_syncs"]
    assert gate.written["journal_outstanding"] == 4  # written: each a row and an item
    answers = [now.finish() for now in later]
    assert gate.written["journal_syncs"] == syncs + 1  # the first finish covered both lines
    assert [a["decision"] for a in answers] == ["review", "review"]
    assert answers[0]["review_id"] != first["review_id"]  # no event id: a new item each time
    assert gate.review(answers[1]["review_id"])["state"] == "pending"
    gate.close()
    logged = set(_decisions(home)["decision_id"])
    assert {a["decision_id"] for a in answers} <= logged
    assert answers[1]["review_id"] in _queue_ids(home)


def test_a_review_answer_that_cannot_be_made_durable_is_denied(gate, home, monkeypatch):
    review = {**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000}
    gate.decide(review, caller=CALLER)
    now = gate.decide_now(review, caller=CALLER)

    def no_disk(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("agentops_assets.service.gate.os.fsync", no_disk)
    answer = now.finish()
    assert (answer["decision"], answer["rules"]) == ("deny", ["gate_error"])
    assert "could not be made durable" in answer["error"] and "review_id" not in answer


def test_decide_now_fails_closed_too(gate, home):
    green = action("fa-1", "FinanceAgent", "invoice.lookup")
    gate.decide(green, caller=CALLER)
    control_path(home).write_text('{"agents": [1, 2')
    answer = gate.decide_now(green, caller=CALLER)
    assert (answer["decision"], answer["rules"]) == ("deny", ["gate_error"])
    assert "control file" in answer["error"]
    gate.close()
    assert answer["decision_id"] in _decisions(home)["decision_id"].to_list()  # logged
    closed = gate.decide_now(green, caller=CALLER)
    assert (closed["decision"], closed["error"]) == ("deny", "the gate is closed")


def test_the_gates_own_commits_do_not_make_it_rebuild_its_cache(gate, home):
    state = gate._state
    for tool in ("invoice.lookup", "iam.create_access_key"):
        gate.decide(action("fa-1", "FinanceAgent", tool), caller=CALLER)
    gate.decide({**action("fa-1", "FinanceAgent", "payments.refund"), "amount_usd": 20_000},
                caller=CALLER)  # fmt: skip
    assert gate.flush()
    assert lake_versions(home, POLICY_DECISIONS) >= 1 and _queue_ids(home)
    time.sleep(0.06)  # past the settling time of a folder's change time
    assert gate.refresh() is False and gate._state is state


def test_a_batch_frame_is_built_in_chunks_with_the_same_rows():
    from agentops_assets.service.gate import _FRAME_CHUNK, _frame

    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "day": TODAY, "decision_id": f"d-{i}", "path": "p", "input": "{}", "result": "{}",
            "bundles": "{}", "timestamp": now, "revision": "r", "event_id": f"ev-{i}",
            "trace_id": None, "agent_id": "fa-1", "agent_type": "FinanceAgent",
            "kind": "tool_call", "action": "x", "decision": "allow", "zone": "green",
            "reasons": [f"reason {i}"] * (i % 3), "rules": [], "approvals_required": i % 2,
            "sample_rate": 0.0, "error": None, "judged_at": now, "source": "gate",
        }
        for i in range(3 * _FRAME_CHUNK + 5)
    ]  # fmt: skip
    built = _frame(rows, DECISION_SCHEMA)
    assert built.n_chunks() == 4  # converted a chunk at a time, each holding the GIL briefly
    assert built.equals(pl.DataFrame(rows, schema=DECISION_SCHEMA))
    assert _frame(rows[:3], DECISION_SCHEMA).equals(pl.DataFrame(rows[:3], schema=DECISION_SCHEMA))


def test_a_writer_is_woken_once_per_batch_and_refuses_items_once_closed():
    from agentops_assets.service.gate import _GroupCommit

    batches: list[list[int]] = []
    writer = _GroupCommit[int]("test-writer", batches.append, linger_s=0.3)
    wakes = []
    notify = writer._wake.notify
    writer._wake.notify = lambda n=1: (wakes.append(n), notify(n))  # type: ignore[method-assign]
    assert all(writer.submit(i) for i in range(50))
    assert len(wakes) == 1  # the first item woke the writer; the batch's others did not
    assert writer.flush(5.0)
    assert batches == [list(range(50))]
    writer.close()
    assert writer.submit(50) is False
    assert writer.committed == 50
