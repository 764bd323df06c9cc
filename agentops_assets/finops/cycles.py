"""``reasoning_cycles``: one row per reasoning cycle (trace), from its events and their costs.

A cycle belongs to the UTC day it started on, even when it runs past midnight. Everything is
one lazy ``group_by`` over the few columns it needs, so it scales to tens of millions of events
without reading the long text columns of ``agent_events``.

Counts are ``Int64`` (Delta Lake has no unsigned integers), durations are milliseconds as
``Float64``, money is US dollars as ``Float64``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import polars as pl

from agentops_assets.telemetry.schema import TOKEN_FIELDS, UTC_US

CYCLES_SCHEMA: Final[dict[str, pl.DataType]] = {
    "trace_id": pl.String(),
    "day": pl.Date(),
    "agent_id": pl.String(),
    "agent_type": pl.String(),
    "agent_tier": pl.String(),
    "started_at": UTC_US,
    "ended_at": UTC_US,
    "decided_at": UTC_US,
    "time_to_decision_ms": pl.Float64(),
    "duration_ms": pl.Float64(),
    "steps": pl.Int64(),
    "plan_steps": pl.Int64(),
    "llm_calls": pl.Int64(),
    "tool_calls": pl.Int64(),
    "memory_ops": pl.Int64(),
    "retrievals": pl.Int64(),
    "decisions": pl.Int64(),
    "reprompts": pl.Int64(),
    "retries": pl.Int64(),
    "errors": pl.Int64(),
    "human_reviews": pl.Int64(),
    "human_interventions": pl.Int64(),
    "final_confidence": pl.Float64(),
    "outcome": pl.String(),
    "value_usd": pl.Float64(),
    **{name: pl.Int64() for name in TOKEN_FIELDS},
    "cost_usd": pl.Float64(),
    "unpriced_calls": pl.Int64(),
    "cost_complete": pl.Boolean(),
}

# Human feedback that changed what the agent did, as opposed to approving or annotating it.
INTERVENTION_FEEDBACK: Final = ("override", "correct")

_EVENT_COLUMNS: Final = (
    "trace_id",
    "ts",
    "event_date",
    "duration_ms",
    "agent_id",
    "agent_type",
    "agent_tier",
    "kind",
    "status",
    "attempt",
    "confidence",
    "outcome",
    "value_usd",
    "feedback_kind",
    *TOKEN_FIELDS,
)
_COUNTS: Final = {
    "plan_steps": "plan",
    "llm_calls": "llm_call",
    "tool_calls": "tool_call",
    "memory_ops": "memory_op",
    "retrievals": "retrieval",
    "decisions": "decision",
    "human_reviews": "human_review",
}


def reasoning_cycles(
    events: pl.LazyFrame, costs: pl.LazyFrame, *, first_day: date, last_day: date
) -> pl.DataFrame:
    """One row per trace whose first event falls on a day in ``[first_day, last_day]``.

    Pass events and costs of ``event_date`` in ``[first_day - 1, last_day + 1]``: the day after
    completes cycles that cross midnight, the day before shows which traces started earlier
    (those are left out, not cut short). Rows outside that window are ignored.

    Args:
        events: ``agent_events`` (only the columns needed here are read).
        costs: ``event_costs``: ``trace_id``, ``event_date`` and ``cost_usd`` (null when the
            event could not be priced) per event.
        first_day: First start day to report, inclusive.
        last_day: Last start day to report, inclusive.

    Returns:
        Columns of ``CYCLES_SCHEMA``, one row per trace, ordered by ``day`` and ``trace_id``.
        ``final_confidence``, ``outcome`` and ``decided_at`` come from the cycle's last
        decision by ``ts`` (null without one); ``value_usd`` is null when no decision carries
        a value; token sums and ``cost_usd`` are 0 when nothing was reported.

    Raises:
        ValueError: ``first_day`` is after ``last_day``.
    """
    if first_day > last_day:
        raise ValueError(f"first_day ({first_day}) must not be after last_day ({last_day}).")
    window = pl.col("event_date").is_between(
        first_day - timedelta(days=1), last_day + timedelta(days=1)
    )
    steps = events.select(_EVENT_COLUMNS).filter(window)
    per_trace_cost = (
        costs.select("trace_id", "event_date", "cost_usd")
        .filter(window)
        .group_by("trace_id")
        .agg(
            pl.col("cost_usd").sum(),
            pl.col("cost_usd").is_null().sum().cast(pl.Int64).alias("unpriced_calls"),
        )
    )
    cycles = (
        steps.group_by("trace_id")
        .agg(_aggregations())
        .with_columns(pl.col("started_at").dt.date().alias("day"))
        .filter(pl.col("day").is_between(first_day, last_day))
        .join(_last_decisions(steps), on="trace_id", how="left")
        .join(per_trace_cost, on="trace_id", how="left")
        .with_columns(
            _ms(pl.col("decided_at") - pl.col("started_at")).alias("time_to_decision_ms"),
            _ms(pl.col("ended_at") - pl.col("started_at")).alias("duration_ms"),
            pl.col("cost_usd").fill_null(0.0),
            pl.col("unpriced_calls").fill_null(0),
        )
        .with_columns((pl.col("unpriced_calls") == 0).alias("cost_complete"))
        .select(pl.col(name).cast(dtype) for name, dtype in CYCLES_SCHEMA.items())
        .sort("day", "trace_id")
    )
    # Scanning the events twice (all of them, then only decisions with the filter pushed into
    # the scan) takes about a third less memory than caching the projected events for both.
    return cycles.collect(optimizations=pl.QueryOptFlags(comm_subplan_elim=False))


def _aggregations() -> list[pl.Expr]:
    kind = pl.col("kind")

    def count(condition: pl.Expr, name: str) -> pl.Expr:
        return condition.sum().cast(pl.Int64).alias(name)

    decided_value = pl.col("value_usd").filter(kind == "decision")
    return [
        # agent_id and agent_type are required fields, so never null; agent_tier is optional.
        pl.col("agent_id").first(),
        pl.col("agent_type").first(),
        pl.col("agent_tier").drop_nulls().first(),
        pl.col("ts").min().alias("started_at"),
        _ended().max().alias("ended_at"),
        pl.len().cast(pl.Int64).alias("steps"),
        *(count(kind == kind_name, name) for name, kind_name in _COUNTS.items()),
        count((kind == "llm_call") & (pl.col("attempt") > 0), "reprompts"),
        count((kind == "tool_call") & (pl.col("attempt") > 0), "retries"),
        count(pl.col("status") == "error", "errors"),
        count(pl.col("feedback_kind").is_in(INTERVENTION_FEEDBACK), "human_interventions"),
        pl.when(decided_value.count() > 0).then(decided_value.sum()).alias("value_usd"),
        *(pl.col(name).sum() for name in TOKEN_FIELDS),
    ]


def _last_decisions(steps: pl.LazyFrame) -> pl.LazyFrame:
    """Per trace with a decision: the end, confidence and outcome of its last one by ``ts``."""
    last = pl.col("ts").arg_max()  # a tie keeps the first of the tied rows
    return (
        steps.filter(pl.col("kind") == "decision")
        .group_by("trace_id")
        .agg(
            _ended().get(last).alias("decided_at"),
            pl.col("confidence").get(last).alias("final_confidence"),
            pl.col("outcome").get(last),
        )
    )


def _ended() -> pl.Expr:
    """When a step ended: its start plus its duration (none counts as zero)."""
    micros = (pl.col("duration_ms").fill_null(0.0) * 1000).round().cast(pl.Int64)
    return pl.col("ts") + pl.duration(microseconds=micros)


def _ms(interval: pl.Expr) -> pl.Expr:
    return interval.dt.total_microseconds() / 1000.0
