"""The daily partitions every FinOps table shares, defined once."""

import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg

LOOKBACK_DAYS = 90


def default_start(today: date) -> date:
    """The first of the month ``LOOKBACK_DAYS`` days before ``today``: a fresh home shows a few
    months of partitions, not years of empty ones."""
    return (today - timedelta(days=LOOKBACK_DAYS)).replace(day=1)


def _start() -> str:
    """AGENTOPS_PARTITIONS_START when set (an ISO date), else ``default_start`` of today (UTC)."""
    value = os.environ.get("AGENTOPS_PARTITIONS_START", "").strip()
    if not value:
        return default_start(datetime.now(UTC).date()).isoformat()
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(
            f"AGENTOPS_PARTITIONS_START={value!r} is not a date; expected YYYY-MM-DD."
        ) from None


# Today's partition exists from midnight (end_offset=1) so the hourly refresh can fill it.
# Telemetry older than the start date needs AGENTOPS_PARTITIONS_START set before loading.
PARTITIONS_START = _start()
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)


def partition_days(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> tuple[date, date]:
    """First and last day a run covers: one partition, or a range in a single-run backfill."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()
