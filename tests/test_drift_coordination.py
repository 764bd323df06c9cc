"""Coordination findings: loops, duplicated work, conflicts, delegation cycles, missed deadlines
and conflicting memory writes.

Every test ingests hand-made JSONL through the landing folder into a real Delta agent_events
and reads it back with ``read_events``; each also plants near misses the rule must not report.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import polars as pl
import pytest

from agentops_assets.drift.coordination import (
    MARGIN,
    CoordinationParams,
    find_coordination,
    read_events,
)
from agentops_assets.drift.tables import COORDINATION_SCHEMA
from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.schema import AGENT_EVENTS
from tests.conftest import write_jsonl

DAY = dt.date(2026, 10, 6)
AGENT_TYPES = {"fin-a": "FinanceAgent", "fin-b": "FinanceAgent", "ops-c": "OpsAgent"}


def step(
    event_id: str,
    trace: str,
    at: str,
    *,
    agent: str = "fin-a",
    kind: str = "tool_call",
    action: str = "invoice.lookup",
    target: str | None = "https://erp.internal/api/v2/invoices/INV-1",
    day: dt.date = DAY,
    **extra: Any,
) -> dict[str, Any]:
    """One native JSONL step at ``at`` (HH:MM:SS) on ``day``."""
    record: dict[str, Any] = {
        "event_id": event_id,
        "trace_id": trace,
        "ts": f"{day.isoformat()}T{at}.000000Z",
        "duration_ms": 250.0,
        "agent_id": agent,
        "agent_type": AGENT_TYPES.get(agent, "PlannerAgent"),
        "kind": kind,
        "action": action,
        "action_target": target,
        "status": "ok",
        "attempt": 0,
    }
    record.update(extra)
    return record


def decision(event_id: str, trace: str, at: str, action: str, target: str, **extra: Any):
    return step(
        event_id,
        trace,
        at,
        kind="decision",
        action=action,
        target=target,
        **{"outcome": "success", "confidence": 0.9, **extra},
    )


def findings(
    paths: Paths,
    records: list[dict[str, Any]],
    first: dt.date = DAY,
    last: dt.date = DAY,
    **params: Any,
) -> pl.DataFrame:
    """Ingest ``records`` into agent_events, then find coordination problems in [first, last]."""
    write_jsonl(paths.landing / "coordination.jsonl", records)
    report = ingest_landing(paths)
    assert report.quarantined_rows == 0, report.reasons
    assert report.new_rows == len(records)
    return find(paths, first, last, **params)


def find(paths: Paths, first: dt.date, last: dt.date, **params: Any) -> pl.DataFrame:
    events = read_events(paths, first - MARGIN, last + MARGIN)
    return find_coordination(events, first, last, CoordinationParams(**params))


def of_kind(found: pl.DataFrame, kind: str) -> list[dict[str, Any]]:
    return found.filter(pl.col("kind") == kind).sort("first_at").to_dicts()


def test_loop_is_one_agent_repeating_a_fresh_call_in_one_cycle(paths: Paths) -> None:
    target = "https://crm.internal/v3/customers/42"
    looping = [
        step(
            f"loop-{i}",
            "tr-loop",
            f"10:00:{i * 5:02d}",
            action="crm.lookup_customer",
            target=target,
        )
        for i in range(6)
    ]
    # Five fresh calls, each retried: eight events, but the agent chose the call only five times.
    retried = [
        step(
            f"retry-{i}",
            "tr-retry",
            f"11:00:{i * 5:02d}",
            action="crm.lookup_customer",
            target=target,
            attempt=a,
        )  # fmt: skip
        for i, a in enumerate((0, 1, 2, 0, 0, 1, 0, 0))
    ]
    # Many LLM calls to one endpoint are how a cycle reasons, not a loop.
    chatty = [
        step(
            f"chat-{i}",
            "tr-chat",
            f"12:00:{i * 5:02d}",
            kind="llm_call",
            action="chat",
            target="https://api.openai.com/v1/chat/completions",
        )  # fmt: skip
        for i in range(9)
    ]
    # Six calls in one cycle, but on six different targets.
    spread = [
        step(
            f"spread-{i}",
            "tr-spread",
            f"13:00:{i * 5:02d}",
            action="crm.lookup_customer",
            target=f"https://crm.internal/v3/customers/{i}",
        )  # fmt: skip
        for i in range(6)
    ]
    found = findings(paths, looping + retried + chatty + spread)

    loops = of_kind(found, "loop")
    assert len(loops) == 1, found["detail"].to_list()
    loop = loops[0]
    assert loop["event_ids"] == [f"loop-{i}" for i in range(6)]
    assert loop["trace_ids"] == ["tr-loop"]
    assert loop["agent_ids"] == ["fin-a"]
    assert (loop["action"], loop["target"], loop["count"]) == ("crm.lookup_customer", target, 6)
    assert loop["day"] == DAY and loop["agent_type"] == "FinanceAgent"
    assert "6 times in one cycle (trace tr-loop)" in loop["detail"]
    assert found.height == 1  # nothing else in this data is a coordination problem

    # The threshold is a parameter: at five, the retried trace's five fresh calls are a loop.
    lower = find(paths, DAY, DAY, loop_min_repeats=5)
    assert sorted(t for r in of_kind(lower, "loop") for t in r["trace_ids"]) == [
        "tr-loop",
        "tr-retry",
    ]


def test_duplicate_work_is_the_same_change_in_two_cycles_within_the_window(
    paths: Paths,
) -> None:
    refunds = "https://api.stripe.com/v1/refunds"
    args = {"input_context": '{"invoice": "INV-7"}'}
    records = [
        # Two agents post the same refund 4 minutes apart: duplicated work.
        step("dup-1", "tr-a", "10:00:00", action="payments.refund", target=refunds, **args),
        step(
            "dup-2",
            "tr-b",
            "10:04:00",
            agent="fin-b",
            action="payments.refund",
            target=refunds,
            **args,
        ),  # fmt: skip
        # The same endpoint with other arguments is other work.
        step(
            "other-args",
            "tr-c",
            "10:05:00",
            agent="fin-b",
            action="payments.refund",
            target=refunds,
            input_context='{"invoice": "INV-8"}',
        ),  # fmt: skip
        # The same refund again, but 30 minutes after the last one: outside the window.
        step("late", "tr-d", "10:34:00", action="payments.refund", target=refunds, **args),
        # Reads repeat harmlessly: both agents look the invoice up.
        step("read-1", "tr-a", "10:00:30", action="invoice.lookup", **args),
        step("read-2", "tr-b", "10:01:30", agent="fin-b", action="invoice.lookup", **args),
        # Two cycles decide the same thing on the same invoice 3 minutes apart.
        decision("dec-1", "tr-a", "10:06:00", "approve_refund", "INV-7"),
        decision("dec-2", "tr-e", "10:09:00", "approve_refund", "INV-7", agent="fin-b"),
        # Repeats inside one cycle (a retry, then the call again) are not a second cycle.
        step("once-0", "tr-f", "11:00:00", action="erp.post_journal", target="j"),
        step("once-1", "tr-f", "11:00:09", action="erp.post_journal", target="j", attempt=1),
        step("once-2", "tr-f", "11:01:00", action="erp.post_journal", target="j"),
    ]
    found = findings(paths, records)

    dups = of_kind(found, "duplicate_work")
    assert [(d["action"], d["event_ids"]) for d in dups] == [
        ("payments.refund", ["dup-1", "dup-2"]),
        ("approve_refund", ["dec-1", "dec-2"]),
    ], found["detail"].to_list()
    refund = dups[0]
    assert refund["trace_ids"] == ["tr-a", "tr-b"]
    assert refund["agent_ids"] == ["fin-a", "fin-b"]
    assert refund["target"] == refunds and refund["count"] == 2
    assert "with the same arguments" in refund["detail"]
    assert dups[1]["agent_ids"] == ["fin-a", "fin-b"]
    assert found.height == 2

    # A window of 40 minutes chains the late refund (30 min after the last) onto the pair.
    wider = of_kind(
        find(paths, DAY, DAY, duplicate_window=dt.timedelta(minutes=40)), "duplicate_work"
    )
    assert ["dup-1", "dup-2", "late"] in [d["event_ids"] for d in wider]


def test_conflict_is_opposite_decisions_on_one_target(paths: Paths) -> None:
    records = [
        decision("approve", "tr-a", "10:00:00", "approve_refund", "INV-9"),
        decision("deny", "tr-b", "10:20:00", "deny_refund", "INV-9", agent="fin-b"),
        # The denial failed, so only the approval took effect.
        decision("ok-approve", "tr-c", "10:00:00", "approve_refund", "INV-10"),
        decision("failed-deny", "tr-d", "10:05:00", "deny_refund", "INV-10", outcome="failure"),
        # Opposite verbs on different objects (a payment, a refund) do not contradict.
        decision("pay", "tr-e", "10:00:00", "approve_payment", "INV-11"),
        decision("no-refund", "tr-f", "10:05:00", "reject_refund", "INV-11"),
        # Two hours apart: outside the one-hour window.
        decision("early", "tr-g", "08:00:00", "approve_refund", "INV-12"),
        decision("later", "tr-h", "10:00:00", "deny_refund", "INV-12"),
        # Opposite decisions on different targets.
        decision("here", "tr-i", "10:00:00", "approve_refund", "INV-13"),
        decision("there", "tr-j", "10:01:00", "deny_refund", "INV-14"),
    ]
    found = findings(paths, records)

    conflicts = of_kind(found, "conflict")
    assert len(conflicts) == 1, found["detail"].to_list()
    conflict = conflicts[0]
    assert conflict["event_ids"] == ["approve", "deny"]
    assert conflict["trace_ids"] == ["tr-a", "tr-b"]
    assert conflict["agent_ids"] == ["fin-a", "fin-b"]
    assert (conflict["action"], conflict["target"]) == ("approve_refund vs deny_refund", "INV-9")
    assert "contradict" in conflict["detail"]
    assert found.height == 1

    # With a three-hour window the INV-12 pair conflicts too.
    wide = of_kind(find(paths, DAY, DAY, conflict_window=dt.timedelta(hours=3)), "conflict")
    assert sorted(c["target"] for c in wide) == ["INV-12", "INV-9"]


def remember(event_id: str, at: str, fact: str, value: str, **extra: Any) -> dict[str, Any]:
    """One memory write of ``fact`` (namespace ``policy``) at ``at``."""
    return step(
        event_id,
        f"tr-{event_id}",
        at,
        kind="memory_op",
        action=extra.pop("action", "update"),
        target=fact,
        input_context=value,
        attributes={"namespace": extra.pop("namespace", "policy"), "fact_key": fact},
        **extra,
    )


def test_memory_conflict_is_two_agents_writing_different_values_of_one_fact(
    paths: Paths,
) -> None:
    records = [
        remember("limit-a", "10:00:00", "refund_limit", "Refunds above 500 USD need a manager."),
        remember(
            "limit-b",
            "10:04:00",
            "refund_limit",
            "Any refund is approved without a manager.",
            agent="fin-b",
        ),  # fmt: skip
        # A refinement builds on the value before it: shared memory working as meant.
        remember("hours-a", "10:00:00", "support_hours", "Support answers 09:00-17:00 CET."),
        remember(
            "hours-b",
            "10:03:00",
            "support_hours",
            "Support answers 09:00-17:00 CET. Updated: weekends too.",
            agent="fin-b",
        ),  # fmt: skip
        # One agent changing its mind is a change, not two agents disagreeing.
        remember("own-1", "10:00:00", "retry_policy", "Retry three times."),
        remember("own-2", "10:02:00", "retry_policy", "Never retry."),
        # Twenty minutes apart: a later change, outside the ten-minute window.
        remember("late-a", "10:00:00", "escalation", "Escalate after 10 reports."),
        remember("late-b", "10:20:00", "escalation", "Escalate after 3 reports.", agent="fin-b"),
        # The same key in two namespaces is two facts.
        remember("ns-a", "10:00:00", "owner", "Team A owns billing.", namespace="billing"),
        remember(
            "ns-b", "10:01:00", "owner", "Team B owns search.", namespace="search", agent="fin-b"
        ),  # fmt: skip
        # A write that failed changed nothing.
        remember("sla-a", "10:00:00", "sla", "Reply within 4 h."),
        remember("sla-b", "10:01:00", "sla", "Reply within 1 day.", agent="fin-b", status="error"),
        # Agents of different types keep different memories.
        remember("tz-a", "10:00:00", "timezone", "Report in CET."),
        remember("tz-c", "10:01:00", "timezone", "Report in UTC.", agent="ops-c"),
    ]
    found = findings(paths, records)

    conflicts = of_kind(found, "memory_conflict")
    assert len(conflicts) == 1, found["detail"].to_list()
    conflict = conflicts[0]
    assert conflict["event_ids"] == ["limit-a", "limit-b"]
    assert conflict["agent_ids"] == ["fin-a", "fin-b"]
    assert conflict["agent_type"] == "FinanceAgent"
    assert conflict["target"] == "policy/refund_limit"
    assert "2 different values" in conflict["detail"]
    assert found.height == 1, found.select("kind", "detail").rows()

    # With a half-hour window the escalation pair conflicts too.
    wide = find(paths, DAY, DAY, memory_conflict_window=dt.timedelta(minutes=30))
    assert sorted(c["target"] for c in of_kind(wide, "memory_conflict")) == [
        "policy/escalation",
        "policy/refund_limit",
    ]


def test_delegation_cycle_is_an_agent_invoked_again_below_itself(paths: Paths) -> None:
    def invoke(event_id: str, trace: str, at: str, agent: str, parent: str) -> dict[str, Any]:
        # An OpenTelemetry GenAI invoke_agent span without an outcome, as ingestion maps it.
        return step(event_id, trace, at, agent=agent, kind="other", action="invoke_agent",
                    target=None, parent_id=parent)  # fmt: skip

    def work(event_id: str, trace: str, at: str, agent: str, parent: str) -> dict[str, Any]:
        return step(event_id, trace, at, agent=agent, kind="llm_call", action="chat",
                    target=None, parent_id=parent)  # fmt: skip

    records = [
        # A -> B -> A: the planner hands to ops, ops hands back to the planner.
        step("a-root", "tr-aba", "10:00:00", agent="plan-a", kind="plan", action="plan"),
        invoke("b-in", "tr-aba", "10:00:01", "ops-c", "a-root"),
        work("b-work", "tr-aba", "10:00:02", "ops-c", "b-in"),
        invoke("a-again", "tr-aba", "10:00:03", "plan-a", "b-work"),
        work("a-work", "tr-aba", "10:00:04", "plan-a", "a-again"),
        # A -> B -> C -> A, three agents round.
        step("r3", "tr-abca", "11:00:00", agent="plan-a", kind="plan", action="plan"),
        invoke("b3", "tr-abca", "11:00:01", "ops-c", "r3"),
        invoke("c3", "tr-abca", "11:00:02", "fin-b", "b3"),
        work("c3-work", "tr-abca", "11:00:03", "fin-b", "c3"),
        invoke("a3", "tr-abca", "11:00:04", "plan-a", "c3-work"),
        # No cycle: A -> B -> C, and A invoking B twice side by side.
        step("r4", "tr-chain", "12:00:00", agent="plan-a", kind="plan", action="plan"),
        invoke("b4", "tr-chain", "12:00:01", "ops-c", "r4"),
        invoke("c4", "tr-chain", "12:00:02", "fin-b", "b4"),
        invoke("b4-again", "tr-chain", "12:00:03", "ops-c", "r4"),
        work("a4-work", "tr-chain", "12:00:04", "plan-a", "r4"),
    ]
    found = findings(paths, records)

    cycles = of_kind(found, "delegation_cycle")
    assert [c["trace_ids"] for c in cycles] == [["tr-aba"], ["tr-abca"]], found["detail"].to_list()
    aba, abca = cycles
    assert aba["event_ids"] == ["b-in", "a-again"]
    assert aba["agent_ids"] == ["plan-a", "ops-c"]
    assert (aba["target"], aba["action"], aba["count"]) == ("plan-a", "invoke_agent", 2)
    assert "plan-a -> ops-c -> plan-a" in aba["detail"]
    assert abca["event_ids"] == ["b3", "c3", "a3"]
    assert abca["agent_ids"] == ["plan-a", "ops-c", "fin-b"]
    assert "plan-a -> ops-c -> fin-b -> plan-a" in abca["detail"]
    assert found.height == 2


def test_delegation_cycle_from_opentelemetry_invoke_agent_spans(paths: Paths) -> None:
    """OTLP/JSON as a GenAI instrumentation writes it: each invoke_agent span names the agent
    invoked; the chat span names none and takes the planner from its parent at ingestion."""
    start = int(dt.datetime(2026, 10, 6, 9, 0, tzinfo=dt.UTC).timestamp()) * 10**9

    def attr(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "value": {"stringValue": value}}

    def span(n: int, parent: int | None, operation: str, agent: str | None) -> dict[str, Any]:
        attrs = [attr("gen_ai.operation.name", operation)]
        if agent:
            attrs += [attr("gen_ai.agent.id", agent), attr("gen_ai.agent.name", agent)]
        else:
            attrs.append(attr("gen_ai.request.model", "gpt-4o"))
        record: dict[str, Any] = {
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": f"00f067aa0ba902b{n}",
            "name": f"{operation} {agent or 'gpt-4o'}",
            "startTimeUnixNano": str(start + n * 10**9),
            "endTimeUnixNano": str(start + n * 10**9 + 5 * 10**8),
            "attributes": attrs,
        }
        if parent is not None:
            record["parentSpanId"] = f"00f067aa0ba902b{parent}"
        return record

    spans = [
        span(1, None, "invoke_agent", "planner"),
        span(2, 1, "invoke_agent", "researcher"),
        span(3, 2, "invoke_agent", "planner"),
        span(4, 3, "chat", None),
    ]
    request = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "app"}, "spans": spans}]}]}
    paths.landing.mkdir(parents=True, exist_ok=True)
    (paths.landing / "trace.json").write_text(json.dumps(request))
    assert ingest_landing(paths).new_rows == 4

    found = find(paths, DAY, DAY)
    assert found["kind"].to_list() == ["delegation_cycle"], found["detail"].to_list()
    assert found["event_ids"][0].to_list() == ["00f067aa0ba902b2", "00f067aa0ba902b3"]
    assert found["agent_ids"][0].to_list() == ["planner", "researcher"]
    assert "planner -> researcher -> planner" in found["detail"][0]


def test_missed_deadline_is_a_step_ending_after_its_deadline(paths: Paths) -> None:
    epoch_ms = int(dt.datetime(2026, 10, 6, 14, 0, tzinfo=dt.UTC).timestamp() * 1000)
    records = [
        # Starts 10:59, runs two minutes, deadline 11:00 (an agentops.* span attribute).
        step(
            "late",
            "tr-late",
            "10:59:00",
            duration_ms=120_000.0,
            attributes={"agentops.deadline": "2026-10-06T11:00:00Z"},
        ),  # fmt: skip
        # The plain JSONL key with an epoch in ms (14:00:00); the step ends 14:00:30.
        step("late-plain", "tr-plain", "13:59:00", duration_ms=90_000.0, deadline=epoch_ms),
        # Ends 11:01 before a deadline of 11:05 (given with an offset: 13:05+02:00).
        step(
            "in-time",
            "tr-ok",
            "10:59:00",
            duration_ms=120_000.0,
            attributes={"agentops.deadline": "2026-10-06T13:05:00+02:00"},
        ),  # fmt: skip
        # No duration: it started (and so ended, as far as anyone knows) before the deadline.
        step(
            "no-duration",
            "tr-open",
            "10:59:00",
            duration_ms=None,
            attributes={"agentops.deadline": "2026-10-06 11:00:00"},
        ),  # fmt: skip
        # Late, but without any deadline.
        step("no-deadline", "tr-none", "10:59:00", duration_ms=600_000.0),
    ]
    found = findings(paths, records)

    missed = of_kind(found, "missed_deadline")
    assert [(m["event_ids"], m["trace_ids"]) for m in missed] == [
        (["late"], ["tr-late"]),
        (["late-plain"], ["tr-plain"]),
    ], found["detail"].to_list()
    assert "deadline 2026-10-06 11:00:00 UTC, the last 60 s late" in missed[0]["detail"]
    assert "deadline 2026-10-06 14:00:00 UTC, the last 30 s late" in missed[1]["detail"]
    assert missed[0]["last_at"] == dt.datetime(2026, 10, 6, 11, 1, tzinfo=dt.UTC)
    assert found.height == 2


def test_one_agent_repeating_its_own_change_is_not_duplicate_work(paths: Paths) -> None:
    records = [
        decision("own-1", "tr-o1", "09:00:00", "restart_service", "svc-search"),
        decision("own-2", "tr-o2", "09:02:00", "restart_service", "svc-search"),
    ]
    assert of_kind(findings(paths, records), "duplicate_work") == []


def test_findings_are_stable_and_belong_to_their_first_days(paths: Paths) -> None:
    next_day = DAY + dt.timedelta(days=1)
    records = [
        # A pair across midnight: found on DAY, from events of both days.
        decision("night-1", "tr-n1", "23:58:00", "restart_service", "svc-checkout"),
        decision(
            "night-2",
            "tr-n2",
            "00:03:00",
            "restart_service",
            "svc-checkout",
            agent="fin-b",
            day=next_day,
        ),  # fmt: skip
        # A pair wholly on the next day.
        decision("day2-1", "tr-d1", "09:00:00", "restart_service", "svc-search", day=next_day),
        decision(
            "day2-2",
            "tr-d2",
            "09:01:00",
            "restart_service",
            "svc-search",
            agent="fin-b",
            day=next_day,
        ),  # fmt: skip
    ]
    found = findings(paths, records)
    assert found.schema == pl.Schema(COORDINATION_SCHEMA)
    assert found["event_ids"].to_list() == [["night-1", "night-2"]]
    assert found["day"].to_list() == [DAY]

    both = find(paths, DAY, next_day)
    assert both["event_ids"].to_list() == [["night-1", "night-2"], ["day2-1", "day2-2"]]
    assert both["day"].to_list() == [DAY, next_day]
    assert both["finding_id"].n_unique() == 2
    # The same finding keeps its id whichever range it was computed in.
    assert both["finding_id"][0] == found["finding_id"][0]
    assert find(paths, next_day, next_day)["finding_id"].to_list() == [both["finding_id"][1]]


def test_an_ordinary_fleet_has_no_coordination_finding(paths: Paths) -> None:
    first = dt.date(2026, 10, 5)
    simulate(paths.landing, paths.simulator, agents=8, days=3, seed=42, start=first,
             incidents=[], cycles_per_agent_day=40)  # fmt: skip
    ingest_landing(paths)
    last = first + dt.timedelta(days=2)
    found = find(paths, first, last)

    # Agents own their services and topics, as on-call rotations and topic owners divide work:
    # an ordinary fleet neither loops, duplicates, conflicts, delegates in circles, misses
    # deadlines nor overwrites another agent's memory.
    assert found.height == 0, found["detail"].to_list()
    # Yet the data has material the rules look at: agents share the read-only kb.search, and
    # at a lower threshold the loop rule finds calls repeated within cycles.
    events = pl.read_delta(paths.table_uri(AGENT_EVENTS))
    assert events.filter(pl.col("action") == "kb.search")["agent_id"].n_unique() > 1

    # The data does repeat calls within cycles (drawn with replacement), just never six times
    # fresh: at a threshold of three the loop rule finds some.
    assert of_kind(find(paths, first, last, loop_min_repeats=3), "loop")


def test_no_events_no_findings(paths: Paths) -> None:
    events = read_events(paths, DAY, DAY)
    assert events.collect().height == 0
    found = find_coordination(events, DAY, DAY)
    assert found.height == 0 and found.schema == pl.Schema(COORDINATION_SCHEMA)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"loop_min_repeats": 1}, "loop_min_repeats"),
        ({"duplicate_window": dt.timedelta(0)}, "duplicate_window"),
        ({"conflict_window": dt.timedelta(minutes=-1)}, "conflict_window"),
        ({"opposite_verbs": (("approve", "approve"),)}, "opposite_verbs"),
        ({"max_delegation_depth": 1}, "max_delegation_depth"),
        ({"memory_conflict_window": dt.timedelta(0)}, "memory_conflict_window"),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CoordinationParams(**params)


def test_a_reversed_range_is_refused() -> None:
    with pytest.raises(ValueError, match="before first_day"):
        find_coordination(pl.DataFrame(), DAY, DAY - dt.timedelta(days=1))
