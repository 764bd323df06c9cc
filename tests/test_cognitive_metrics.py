"""Cognitive metrics: reasoning cycles, daily agent metrics and ROI per agent type."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from agentops_assets.finops.cycles import CYCLES_SCHEMA, reasoning_cycles
from agentops_assets.finops.metrics import DAILY_METRICS_SCHEMA, agent_daily_metrics
from agentops_assets.finops.roi import ROI_SCHEMA, agent_type_roi
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS, EVENT_SCHEMA

DAY = dt.date(2026, 3, 10)
COSTS_SCHEMA = {
    "event_id": pl.String(),
    "trace_id": pl.String(),
    "event_date": pl.Date(),
    "kind": pl.String(),
    "cost_usd": pl.Float64(),
    "unpriced_reason": pl.String(),
}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def step(event_id: str, trace_id: str, ts: str, kind: str, **fields: Any) -> dict[str, Any]:
    """One agent_events row of agent a1 (FinanceAgent, strategic) unless told otherwise.

    ``ts`` is a time on DAY ("10:00:12") or a full ISO timestamp.
    """
    when = at(ts if "T" in ts else f"{DAY.isoformat()}T{ts}")
    row: dict[str, Any] = dict.fromkeys(EVENT_SCHEMA.names())
    row.update(
        event_id=event_id,
        trace_id=trace_id,
        ts=when,
        event_date=when.date(),
        agent_id="a1",
        agent_type="FinanceAgent",
        agent_tier="strategic",
        kind=kind,
        status="ok",
        attempt=0,
        source_format="jsonl",
        source_file="test.jsonl",
        ingested_at=when,
    )
    row.update(fields)
    return row


def cost(event: dict[str, Any], usd: float | None) -> dict[str, Any]:
    return {
        "event_id": event["event_id"],
        "trace_id": event["trace_id"],
        "event_date": event["event_date"],
        "kind": event["kind"],
        "cost_usd": usd,
        "unpriced_reason": None if usd is not None else "unknown_model",
    }


def _trace_steps() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Events and costs of a few traces around DAY; rows deliberately not in ts order."""
    # One event a line reads as a trace.
    # fmt: off
    tokens = {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 5}
    t1 = [
        step("e01", "t1", "10:00:12", "decision", duration_ms=500.0, confidence=0.9,
             outcome="success", value_usd=5.0),
        step("e02", "t1", "10:00:00", "plan", duration_ms=100.0),
        step("e03", "t1", "10:00:01", "llm_call", duration_ms=1000.0, **tokens,
             cache_write_tokens=3, reasoning_tokens=7),
        step("e04", "t1", "10:00:03", "llm_call", duration_ms=500.0, attempt=1, status="error",
             input_tokens=50, output_tokens=10),
        step("e05", "t1", "10:00:04", "tool_call", duration_ms=200.0),
        step("e06", "t1", "10:00:05", "tool_call", duration_ms=300.0, attempt=2, status="error"),
        step("e07", "t1", "10:00:06", "memory_op", duration_ms=50.0),
        step("e08", "t1", "10:00:07", "retrieval", duration_ms=50.0),
        step("e09", "t1", "10:00:08", "decision", duration_ms=1000.0, confidence=0.6,
             outcome="failure", value_usd=10.0),
        step("e10", "t1", "10:00:10", "human_review", duration_ms=0.0, feedback_kind="override"),
        step("e11", "t1", "10:00:13", "human_review", duration_ms=2000.0, feedback_kind="approve"),
        step("e12", "t1", "10:00:14", "other"),
        # Outside the window the caller should pass: ignored, or t1 would start on March 7.
        step("e13", "t1", "2026-03-07T09:00:00", "llm_call", input_tokens=999),
    ]
    support = {"agent_id": "a2", "agent_type": "SupportAgent", "agent_tier": "tactical"}
    t2 = [  # no decision; the tier is only on a later event
        step("e20", "t2", "12:00:00", "llm_call", **{**support, "agent_tier": None},
             duration_ms=250.0, input_tokens=10, output_tokens=5),
        step("e21", "t2", "12:00:01", "human_review", **support, feedback_kind="correct"),
        step("e22", "t2", "12:00:02", "tool_call", **support, duration_ms=1500.0),
    ]
    t3 = [  # crosses midnight: belongs to March 10, whole
        step("e30", "t3", "23:59:50", "llm_call", duration_ms=5000.0),
        step("e31", "t3", "2026-03-11T00:00:10", "decision", duration_ms=2000.0, confidence=0.7,
             outcome="unknown"),
    ]
    t4 = [  # started the day before first_day: not a cycle of March 10
        step("e40", "t4", "2026-03-09T23:59:00", "llm_call"),
        step("e41", "t4", "00:01:00", "decision", outcome="success"),
    ]
    t5 = [step("e50", "t5", "2026-03-11T08:00:00", "llm_call")]  # starts after last_day
    # fmt: on
    events = t1 + t2 + t3 + t4 + t5
    by_id = {e["event_id"]: e for e in events}
    costs = [
        cost(by_id["e03"], 0.25),
        cost(by_id["e04"], 0.125),
        cost(by_id["e05"], None),  # unpriced
        cost(by_id["e13"], 100.0),  # outside the window
        cost(by_id["e20"], 0.5),
        cost(by_id["e22"], 0.0),
        cost(by_id["e30"], 1.0),
        cost(by_id["e31"], 0.0),
        cost(by_id["e40"], 7.0),
    ]
    return events, costs


def _cycles() -> pl.DataFrame:
    events, costs = _trace_steps()
    return reasoning_cycles(
        pl.LazyFrame(events, schema=EVENT_SCHEMA),
        pl.LazyFrame(costs, schema=COSTS_SCHEMA),
        first_day=DAY,
        last_day=DAY,
    )


def _row(frame: pl.DataFrame, **keys: Any) -> dict[str, Any]:
    matches = frame.filter(**keys)
    assert matches.height == 1, keys
    return matches.row(0, named=True)


def test_cycles_have_the_schema_and_only_traces_started_in_range() -> None:
    cycles = _cycles()
    assert cycles.schema == pl.Schema(CYCLES_SCHEMA)
    assert cycles["trace_id"].to_list() == ["t1", "t2", "t3"]
    assert cycles["day"].unique().to_list() == [DAY]


def test_a_cycle_counts_steps_by_kind_and_takes_its_last_decision() -> None:
    assert _row(_cycles(), trace_id="t1") == {
        "trace_id": "t1",
        "day": DAY,
        "agent_id": "a1",
        "agent_type": "FinanceAgent",
        "agent_tier": "strategic",
        "started_at": at("2026-03-10T10:00:00"),
        "ended_at": at("2026-03-10T10:00:15"),
        "decided_at": at("2026-03-10T10:00:12.500"),
        "time_to_decision_ms": 12_500.0,
        "duration_ms": 15_000.0,
        "steps": 12,
        "plan_steps": 1,
        "llm_calls": 2,
        "tool_calls": 2,
        "memory_ops": 1,
        "retrievals": 1,
        "decisions": 2,
        "reprompts": 1,  # the llm_call with attempt 1
        "retries": 1,  # the tool_call with attempt 2
        "errors": 2,
        "human_reviews": 2,
        "human_interventions": 1,  # override counts, approve does not
        "final_confidence": 0.9,
        "outcome": "success",
        "value_usd": 15.0,
        "input_tokens": 150,
        "output_tokens": 30,
        "cache_read_tokens": 5,
        "cache_write_tokens": 3,
        "reasoning_tokens": 7,
        "cost_usd": 0.375,
        "unpriced_calls": 1,
        "cost_complete": False,
    }


def test_a_cycle_without_decision_has_null_decision_fields() -> None:
    t2 = _row(_cycles(), trace_id="t2")
    assert {k: t2[k] for k in ("agent_id", "agent_type", "agent_tier")} == {
        "agent_id": "a2",
        "agent_type": "SupportAgent",
        "agent_tier": "tactical",
    }
    assert t2["decided_at"] is None
    assert t2["time_to_decision_ms"] is None
    assert t2["final_confidence"] is None
    assert t2["outcome"] is None
    assert t2["value_usd"] is None
    assert (t2["decisions"], t2["human_interventions"], t2["human_reviews"]) == (0, 1, 1)
    assert (t2["input_tokens"], t2["output_tokens"], t2["reasoning_tokens"]) == (10, 5, 0)
    assert t2["ended_at"] == at("2026-03-10T12:00:03.500")
    assert (t2["cost_usd"], t2["unpriced_calls"], t2["cost_complete"]) == (0.5, 0, True)


def test_a_cycle_crossing_midnight_belongs_to_its_start_day_and_is_whole() -> None:
    t3 = _row(_cycles(), trace_id="t3")
    assert t3["day"] == DAY
    assert t3["steps"] == 2
    assert t3["ended_at"] == at("2026-03-11T00:00:12")
    assert t3["duration_ms"] == 22_000.0
    assert t3["time_to_decision_ms"] == 22_000.0
    assert (t3["final_confidence"], t3["outcome"]) == (0.7, "unknown")
    assert t3["value_usd"] is None  # a decision without a value
    assert (t3["cost_usd"], t3["cost_complete"]) == (1.0, True)


def test_a_cycle_without_costs_costs_nothing_and_is_complete() -> None:
    events, _ = _trace_steps()
    cycles = reasoning_cycles(
        pl.LazyFrame(events, schema=EVENT_SCHEMA),
        pl.LazyFrame(schema=COSTS_SCHEMA),
        first_day=DAY,
        last_day=dt.date(2026, 3, 11),
    )
    assert cycles["trace_id"].to_list() == ["t1", "t2", "t3", "t5"]
    assert cycles["cost_usd"].to_list() == [0.0] * 4
    assert cycles["cost_complete"].all()


def test_reasoning_cycles_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError, match="first_day"):
        reasoning_cycles(
            pl.LazyFrame(schema=EVENT_SCHEMA),
            pl.LazyFrame(schema=COSTS_SCHEMA),
            first_day=DAY,
            last_day=DAY - dt.timedelta(days=1),
        )


def cycle(trace_id: str, **fields: Any) -> dict[str, Any]:
    """A reasoning_cycles row for agent a1 on DAY; zero counts unless told otherwise."""
    row: dict[str, Any] = {
        name: 0 if dtype == pl.Int64() else None for name, dtype in CYCLES_SCHEMA.items()
    }
    row.update(
        trace_id=trace_id,
        day=DAY,
        agent_id="a1",
        agent_type="FinanceAgent",
        agent_tier="strategic",
        started_at=at("2026-03-10T09:00:00"),
        cost_usd=0.0,
        cost_complete=True,
    )
    row.update(fields)
    return row


def _daily() -> pl.DataFrame:
    cycles = [
        cycle(
            "c1",
            outcome="success",
            time_to_decision_ms=100.0,
            final_confidence=0.9,
            steps=10,
            llm_calls=2,
            reprompts=1,
            tool_calls=1,
            human_reviews=1,
            human_interventions=1,
            errors=1,
            input_tokens=100,
            output_tokens=10,
            value_usd=10.0,
            cost_usd=1.0,
        ),
        cycle(
            "c2",
            outcome="failure",
            time_to_decision_ms=200.0,
            final_confidence=0.5,
            steps=10,
            llm_calls=2,
            tool_calls=3,
            retries=1,
            cost_usd=1.0,
        ),
        cycle(
            "c3",
            outcome="unknown",
            time_to_decision_ms=400.0,
            final_confidence=0.7,
            steps=5,
            cost_usd=0.5,
            unpriced_calls=2,
            cost_complete=False,
        ),
        cycle("c4", steps=5, cost_usd=0.5),
        cycle("c5", day=DAY + dt.timedelta(days=1), steps=3, llm_calls=1, cost_usd=0.25),
        cycle("c6", agent_id="a2", agent_type="SupportAgent", agent_tier=None, steps=1),
    ]
    return agent_daily_metrics(pl.DataFrame(cycles, schema=CYCLES_SCHEMA).lazy())


def test_daily_metrics_have_the_schema_one_row_per_day_and_agent() -> None:
    daily = _daily()
    assert daily.schema == pl.Schema(DAILY_METRICS_SCHEMA)
    assert daily.select("day", "agent_id", "cycles").rows() == [
        (DAY, "a1", 4),
        (DAY, "a2", 1),
        (DAY + dt.timedelta(days=1), "a1", 1),
    ]


def test_daily_metrics_rates_quantiles_and_costs() -> None:
    a1 = _row(_daily(), day=DAY, agent_id="a1")
    assert a1 == {
        "day": DAY,
        "agent_id": "a1",
        "agent_type": "FinanceAgent",
        "agent_tier": "strategic",
        "cycles": 4,
        "decisions": 3,  # success, failure and unknown; c4 reached no outcome
        "successful_decisions": 1,
        "failed_decisions": 1,
        "success_rate": pytest.approx(1 / 3),
        # linear interpolation over [100, 200, 400]: p95 at 1.9 -> 200 + 0.9 * 200
        "time_to_decision_p50_ms": 200.0,
        "time_to_decision_p95_ms": pytest.approx(380.0),
        "confidence_mean": pytest.approx(0.7),
        # over [0.5, 0.7, 0.9]: p10 at 0.2 -> 0.5 + 0.2 * 0.2
        "confidence_p10": pytest.approx(0.54),
        "reprompt_rate": 0.25,
        "retry_rate": 0.25,
        "intervention_rate": 0.25,
        "review_rate": 0.25,
        "error_rate": pytest.approx(1 / 30),
        "steps": 30,
        "llm_calls": 4,
        "tool_calls": 4,
        "reprompts": 1,
        "retries": 1,
        "human_reviews": 1,
        "human_interventions": 1,
        "errors": 1,
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 110,
        "value_usd": 10.0,
        "cost_usd": 3.0,
        "cost_per_cycle_usd": 0.75,
        "cost_per_successful_decision_usd": 3.0,
        "unpriced_calls": 2,
    }


def test_daily_metrics_rates_are_null_when_their_denominator_is_zero() -> None:
    a2 = _row(_daily(), day=DAY, agent_id="a2")
    for name in (
        "success_rate",
        "time_to_decision_p50_ms",
        "time_to_decision_p95_ms",
        "confidence_mean",
        "confidence_p10",
        "reprompt_rate",
        "retry_rate",
        "cost_per_successful_decision_usd",
    ):
        assert a2[name] is None, name
    assert (a2["agent_tier"], a2["decisions"], a2["error_rate"]) == (None, 0, 0.0)
    assert (a2["intervention_rate"], a2["value_usd"], a2["cost_per_cycle_usd"]) == (0.0, 0.0, 0.0)


def daily_row(
    day: str,
    agent_id: str,
    agent_type: str,
    counts: tuple[int, int, int],
    value: float,
    cost: float,
) -> dict[str, Any]:
    cycles, decisions, successes = counts
    return {
        "day": dt.date.fromisoformat(day),
        "agent_id": agent_id,
        "agent_type": agent_type,
        "cycles": cycles,
        "decisions": decisions,
        "successful_decisions": successes,
        "value_usd": value,
        "cost_usd": cost,
    }


def _daily_for_roi() -> pl.DataFrame:
    rows = [
        daily_row("2026-02-01", "a1", "Fin", (1, 1, 1), 100.0, 50.0),  # previous month
        daily_row("2026-02-28", "a1", "Fin", (1, 1, 0), 0.0, 25.0),  # previous month, clipped
        daily_row("2026-03-01", "a2", "Fin", (2, 2, 2), 40.0, 10.0),
        daily_row("2026-03-23", "a1", "Fin", (1, 1, 1), 30.0, 10.0),  # previous week
        daily_row("2026-03-24", "a2", "Fin", (1, 1, 1), 10.0, 10.0),  # previous week
        daily_row("2026-03-25", "a1", "Fin", (1, 1, 1), 1000.0, 1.0),  # month only
        daily_row("2026-03-30", "a1", "Fin", (2, 2, 1), 30.0, 20.0),  # this week, previous day
        daily_row("2026-03-31", "a1", "Fin", (1, 1, 1), 12.0, 4.0),
        daily_row("2026-03-31", "a2", "Fin", (1, 1, 0), 0.0, 4.0),
        daily_row("2026-03-30", "o1", "Ops", (1, 1, 1), 10.0, 10.0),
        daily_row("2026-03-31", "o1", "Ops", (1, 0, 0), 0.0, 0.0),
    ]
    return pl.DataFrame(rows)


def _roi(days: list[dt.date]) -> pl.DataFrame:
    return agent_type_roi(_daily_for_roi().lazy(), days=days)


def test_roi_has_the_schema_and_a_row_per_day_type_and_period() -> None:
    roi = _roi([dt.date(2026, 3, 31), dt.date(2026, 3, 29), dt.date(2026, 3, 31)])
    assert roi.schema == pl.Schema(ROI_SCHEMA)
    # Ops appears on March 30, so it has no rows as of March 29.
    assert roi.select("day", "agent_type", "period").rows() == [
        (dt.date(2026, 3, 29), "Fin", "day"),
        (dt.date(2026, 3, 29), "Fin", "week"),
        (dt.date(2026, 3, 29), "Fin", "month"),
        *(
            (dt.date(2026, 3, 31), kind, period)
            for kind in ("Fin", "Ops")
            for period in ("day", "week", "month")
        ),
    ]
    idle = _row(roi, day=dt.date(2026, 3, 29), agent_type="Fin", period="day")
    assert (idle["agents"], idle["cycles"], idle["value_usd"], idle["cost_usd"]) == (0, 0, 0.0, 0.0)
    assert (idle["roi"], idle["trend"]) == (None, None)


def test_roi_for_the_day_against_the_day_before() -> None:
    day = _row(_roi([dt.date(2026, 3, 31)]), agent_type="Fin", period="day")
    assert day == {
        "day": dt.date(2026, 3, 31),
        "agent_type": "Fin",
        "period": "day",
        "period_start": dt.date(2026, 3, 31),
        "period_end": dt.date(2026, 3, 31),
        "agents": 2,
        "cycles": 2,
        "decisions": 2,
        "successful_decisions": 1,
        "value_usd": 12.0,
        "cost_usd": 8.0,
        "net_value_usd": 4.0,
        "roi": 0.5,
        "cost_per_successful_decision_usd": 8.0,
        "success_rate": 0.5,
        "prev_period_start": dt.date(2026, 3, 30),
        "prev_period_end": dt.date(2026, 3, 30),
        "prev_value_usd": 30.0,
        "prev_cost_usd": 20.0,
        "prev_roi": 0.5,
        "prev_cost_per_successful_decision_usd": 20.0,
        "roi_change": 0.0,
        "cost_per_success_change_pct": -60.0,
        "trend": "flat",
    }


def test_roi_for_the_week_to_date_against_last_week_to_the_same_weekday() -> None:
    week = _row(_roi([dt.date(2026, 3, 31)]), agent_type="Fin", period="week")
    assert (week["period_start"], week["period_end"]) == (
        dt.date(2026, 3, 30),
        dt.date(2026, 3, 31),
    )
    assert (week["prev_period_start"], week["prev_period_end"]) == (
        dt.date(2026, 3, 23),
        dt.date(2026, 3, 24),
    )
    assert (week["agents"], week["cycles"], week["successful_decisions"]) == (2, 4, 2)
    assert (week["value_usd"], week["cost_usd"], week["roi"]) == (42.0, 28.0, 0.5)
    assert (week["prev_value_usd"], week["prev_cost_usd"], week["prev_roi"]) == (40.0, 20.0, 1.0)
    assert week["cost_per_successful_decision_usd"] == 14.0
    assert week["prev_cost_per_successful_decision_usd"] == 10.0
    assert week["cost_per_success_change_pct"] == pytest.approx(40.0)
    assert (week["roi_change"], week["trend"]) == (-0.5, "down")


def test_roi_for_the_month_compares_with_the_previous_month_clipped_to_its_end() -> None:
    month = _row(_roi([dt.date(2026, 3, 31)]), agent_type="Fin", period="month")
    assert (month["period_start"], month["period_end"]) == (
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 31),
    )
    assert (month["prev_period_start"], month["prev_period_end"]) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 28),
    )
    assert (month["agents"], month["cycles"], month["decisions"]) == (2, 9, 9)
    assert (month["value_usd"], month["cost_usd"], month["net_value_usd"]) == (1122.0, 59.0, 1063.0)
    assert month["roi"] == pytest.approx(1063 / 59)
    assert (month["prev_value_usd"], month["prev_cost_usd"]) == (100.0, 75.0)
    assert month["prev_roi"] == pytest.approx(1 / 3)
    assert month["prev_cost_per_successful_decision_usd"] == 75.0
    assert month["trend"] == "up"
    mid = _row(_roi([dt.date(2026, 3, 15)]), agent_type="Fin", period="month")
    assert (mid["prev_period_start"], mid["prev_period_end"]) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 15),
    )
    assert (mid["prev_value_usd"], mid["prev_cost_usd"]) == (100.0, 50.0)


def test_roi_is_null_without_cost_and_then_has_no_trend() -> None:
    ops = _roi([dt.date(2026, 3, 31)]).filter(agent_type="Ops")
    day, week, month = ops.rows(named=True)
    assert (day["cost_usd"], day["roi"], day["prev_roi"], day["trend"]) == (0.0, None, 0.0, None)
    assert day["cost_per_successful_decision_usd"] is None
    assert day["cost_per_success_change_pct"] is None
    assert (week["roi"], week["prev_roi"], week["trend"]) == (0.0, None, None)
    assert (month["prev_cost_usd"], month["trend"]) == (0.0, None)


def test_roi_trend_tolerates_changes_within_five_percent() -> None:
    rows = [
        daily_row("2026-03-10", "e1", "Edge", (1, 1, 1), 16.0, 8.0),  # roi 1.0
        daily_row("2026-03-11", "e1", "Edge", (1, 1, 1), 16.25, 8.0),  # 1.03125: within 5%
        daily_row("2026-03-12", "e1", "Edge", (1, 1, 1), 16.75, 8.0),  # 1.09375: beyond
        daily_row("2026-03-13", "e1", "Edge", (1, 1, 1), 8.0, 8.0),  # 0.0
        daily_row("2026-03-14", "e1", "Edge", (1, 1, 1), 8.0625, 8.0),  # beyond the 0.01 floor
    ]
    days = [dt.date(2026, 3, d) for d in range(10, 15)]
    roi = agent_type_roi(pl.DataFrame(rows), days=days).filter(period="day")
    assert roi["roi"].to_list() == [1.0, 1.03125, 1.09375, 0.0, 0.0078125]
    assert roi["trend"].to_list() == [None, "flat", "up", "down", "up"]


def test_roi_rejects_days_that_are_not_dates() -> None:
    with pytest.raises(ValueError, match="days must be dates"):
        agent_type_roi(_daily_for_roi(), days=[dt.datetime(2026, 3, 31)])  # type: ignore[list-item]


def test_metrics_on_simulated_telemetry_add_up(paths: Paths) -> None:
    from agentops_assets.simulator import simulate
    from agentops_assets.telemetry.ingest import ingest_landing

    start = dt.date(2026, 3, 2)
    simulate(
        paths.landing,
        paths.simulator,
        agents=6,
        days=3,
        seed=11,
        start=start,
        fmt="jsonl",
        cycles_per_agent_day=20,
    )
    ingest_landing(paths)
    events = pl.scan_delta(paths.table_uri(AGENT_EVENTS))
    # Stand-in for event_costs: LLM calls at the cost the producer reported (null: unpriced).
    costs = events.filter(pl.col("kind") == "llm_call").select(
        "event_id", "trace_id", "event_date", "kind", "cost_usd"
    )
    first, last = start + dt.timedelta(days=1), start + dt.timedelta(days=2)
    cycles = reasoning_cycles(events, costs, first_day=first, last_day=last)

    all_events = events.select("trace_id", "ts", "kind", "cost_usd").collect()
    starts = all_events.group_by("trace_id").agg(pl.col("ts").min().dt.date().alias("day"))
    in_range = starts.filter(pl.col("day").is_between(first, last))
    assert cycles.height == in_range.height == cycles["trace_id"].n_unique() > 0
    assert set(cycles["trace_id"]) == set(in_range["trace_id"])
    assert cycles["day"].min() == first and cycles["day"].max() == last

    traced = all_events.join(in_range, on="trace_id", how="semi")
    llm = traced.filter(pl.col("kind") == "llm_call")
    assert cycles["steps"].sum() == traced.height
    assert cycles["llm_calls"].sum() == llm.height
    assert cycles["decisions"].sum() == traced.filter(pl.col("kind") == "decision").height
    assert cycles["unpriced_calls"].sum() == llm["cost_usd"].null_count()
    assert cycles["cost_usd"].sum() == pytest.approx(llm["cost_usd"].sum())
    assert cycles["cost_complete"].to_list() == (cycles["unpriced_calls"] == 0).to_list()
    decided = cycles.filter(pl.col("decided_at").is_not_null())
    assert decided.height > 0
    assert (decided["started_at"] <= decided["decided_at"]).all()
    assert (cycles["started_at"] <= cycles["ended_at"]).all()
    assert (decided["time_to_decision_ms"] >= 0).all()

    daily = agent_daily_metrics(cycles)
    assert daily.select("day", "agent_id").is_unique().all()
    assert daily["cycles"].sum() == cycles.height
    for name in ("llm_calls", "reprompts", "retries", "errors", "input_tokens", "unpriced_calls"):
        assert daily[name].sum() == cycles[name].sum(), name
    assert daily["cost_usd"].sum() == pytest.approx(cycles["cost_usd"].sum())
    assert daily["agent_id"].n_unique() <= 6
    rates = daily.select("success_rate", "reprompt_rate", "retry_rate", "error_rate")
    assert rates.select(pl.all().drop_nulls().is_between(0, 1).all()).row(0) == (True,) * 4

    roi = agent_type_roi(daily, days=[first, last])
    per_day = roi.filter(period="day")
    for day in (first, last):
        of_day = per_day.filter(day=day)
        assert of_day["cycles"].sum() == cycles.filter(day=day).height
        assert of_day["cost_usd"].sum() == pytest.approx(daily.filter(day=day)["cost_usd"].sum())
    month = roi.filter(period="month", day=last)
    assert month["cycles"].sum() == cycles.height
    assert month["value_usd"].sum() == pytest.approx(daily["value_usd"].sum())
