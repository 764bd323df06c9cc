"""Refresh the FinOps tables for a range of days: read the lake, compute, replace partitions.

Every table here is partitioned by day, and a refresh rewrites exactly the days of its range in
one Delta commit, so re-running a day (an hourly refresh of today, a backfill) never duplicates
rows and a crash leaves the previous rows readable. The computations are the pure functions of
the sibling modules; this module only knows where the tables are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Final

import polars as pl

from agentops_assets.finops.budgets import load_budgets
from agentops_assets.finops.compliance import budget_compliance
from agentops_assets.finops.cycles import CYCLES_SCHEMA, reasoning_cycles
from agentops_assets.finops.metrics import DAILY_METRICS_SCHEMA, agent_daily_metrics
from agentops_assets.finops.pricing import EVENT_COSTS_SCHEMA, load_pricing, price_events
from agentops_assets.finops.roi import ROI_SCHEMA, agent_type_roi
from agentops_assets.finops.tables import (
    AGENT_DAILY_METRICS,
    AGENT_TYPE_ROI,
    BUDGET_COMPLIANCE,
    BUDGETS_FILE,
    EVENT_COSTS,
    PRICING_FILE,
    REASONING_CYCLES,
)
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS

# Columns of agent_events the FinOps tables read; the long text columns are never loaded.
_PRICING_COLUMNS: Final = (
    "event_id",
    "trace_id",
    "ts",
    "event_date",
    "agent_id",
    "agent_type",
    "kind",
    "status",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
)


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def refresh_event_costs(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """Price every LLM call (and keep every reported cost) of the days in [first, last]."""
    overrides = load_pricing(paths.policy_file(PRICING_FILE))
    events = _scan(paths, AGENT_EVENTS, "event_date", first, last)
    if events is None:
        costs = pl.DataFrame(schema=EVENT_COSTS_SCHEMA)
    else:
        costs = price_events(events.select(_PRICING_COLUMNS), overrides=overrides)
    _replace(paths, EVENT_COSTS, costs, "event_date", first, last)
    return costs


def refresh_reasoning_cycles(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """One row per reasoning cycle that started in [first, last].

    Events of the day before and after are read too, so a cycle that crosses midnight is whole
    and one that began the day before is not counted again.
    """
    window = (first - timedelta(days=1), last + timedelta(days=1))
    events = _scan(paths, AGENT_EVENTS, "event_date", *window)
    costs = _scan(paths, EVENT_COSTS, "event_date", *window)
    if events is None:
        cycles = pl.DataFrame(schema=CYCLES_SCHEMA)
    else:
        costs = costs if costs is not None else pl.LazyFrame(schema=EVENT_COSTS_SCHEMA)
        cycles = reasoning_cycles(events, costs, first_day=first, last_day=last)
    _replace(paths, REASONING_CYCLES, cycles, "day", first, last)
    return cycles


def refresh_agent_daily_metrics(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """Per agent and day in [first, last]: cycles, decisions, rates, tokens, cost."""
    cycles = _scan(paths, REASONING_CYCLES, "day", first, last)
    if cycles is None:
        metrics = pl.DataFrame(schema=DAILY_METRICS_SCHEMA)
    else:
        metrics = agent_daily_metrics(cycles)
    _replace(paths, AGENT_DAILY_METRICS, metrics, "day", first, last)
    return metrics


def refresh_agent_type_roi(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """Value, cost and ROI per agent type for each day in [first, last], with the trend."""
    # The previous month (to date) is the oldest window any day of the range compares with.
    oldest = min(_first_of_previous_month(first), first - timedelta(days=14))
    daily = _scan(paths, AGENT_DAILY_METRICS, "day", oldest, last)
    if daily is None:
        roi = pl.DataFrame(schema=ROI_SCHEMA)
    else:
        roi = agent_type_roi(daily.collect(), days=days_between(first, last))
    _replace(paths, AGENT_TYPE_ROI, roi, "day", first, last)
    return roi


def refresh_budget_compliance(
    paths: Paths, first: date, last: date, *, now: datetime | None = None
) -> pl.DataFrame:
    """Spend against every cap of budgets.yaml, as of each day in [first, last]."""
    budgets = load_budgets(paths.policy_file(BUDGETS_FILE))
    spend = daily_spend(paths, first.replace(day=1), last)
    compliance = budget_compliance(
        spend, budgets, days=days_between(first, last), now=now or datetime.now(UTC)
    )
    _replace(paths, BUDGET_COMPLIANCE, compliance, "day", first, last)
    return compliance


def daily_spend(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """Spend per day, agent type, provider and model, from ``event_costs``."""
    costs = _scan(paths, EVENT_COSTS, "event_date", first, last)
    schema = {
        "day": pl.Date,
        "agent_type": pl.String,
        "provider": pl.String,
        "model": pl.String,
        "spend_usd": pl.Float64,
    }
    if costs is None:
        return pl.DataFrame(schema=schema)
    return (
        costs.group_by(
            pl.col("event_date").alias("day"),
            "agent_type",
            pl.col("provider_id").alias("provider"),
            "model",
        )
        .agg(pl.col("cost_usd").sum().alias("spend_usd"))
        .collect()
        .cast(schema)
    )


def refresh_all(
    paths: Paths, first: date, last: date, *, now: datetime | None = None
) -> dict[str, pl.DataFrame]:
    """Every FinOps table for [first, last], in dependency order (what a backfill runs)."""
    return {
        EVENT_COSTS: refresh_event_costs(paths, first, last),
        REASONING_CYCLES: refresh_reasoning_cycles(paths, first, last),
        AGENT_DAILY_METRICS: refresh_agent_daily_metrics(paths, first, last),
        AGENT_TYPE_ROI: refresh_agent_type_roi(paths, first, last),
        BUDGET_COMPLIANCE: refresh_budget_compliance(paths, first, last, now=now),
    }


def event_date_range(paths: Paths) -> tuple[date, date] | None:
    """First and last ``event_date`` in ``agent_events``, or ``None`` when there is none."""
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if events is None:
        return None
    bounds = events.select(
        pl.col("event_date").min().alias("first"), pl.col("event_date").max().alias("last")
    ).collect()
    first, last = bounds.row(0)
    return None if first is None else (first, last)


def event_days(paths: Paths) -> list[date]:
    """Every distinct ``event_date`` in ``agent_events``, in order (empty when there is none)."""
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if events is None:
        return []
    days = events.select(pl.col("event_date").unique().sort()).collect()
    return [day for day in days["event_date"] if day is not None]


def _scan(paths: Paths, table: str, column: str, first: date, last: date) -> pl.LazyFrame | None:
    frame = lake.scan(paths.table_uri(table))
    return None if frame is None else frame.filter(pl.col(column).is_between(first, last))


def _replace(
    paths: Paths, table: str, frame: pl.DataFrame, column: str, first: date, last: date
) -> None:
    with lake.writer_lock(paths, table):
        lake.replace_range(
            paths.table_uri(table),
            frame,
            column=column,
            first=first,
            last=last,
            metadata={"refresh": f"{first.isoformat()}..{last.isoformat()}"},
        )


def _first_of_previous_month(day: date) -> date:
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)


__all__: Sequence[str] = (
    "daily_spend",
    "days_between",
    "event_date_range",
    "event_days",
    "refresh_agent_daily_metrics",
    "refresh_agent_type_roi",
    "refresh_all",
    "refresh_budget_compliance",
    "refresh_event_costs",
    "refresh_reasoning_cycles",
)
