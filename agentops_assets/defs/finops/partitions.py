"""The daily partitions every FinOps table shares, defined once."""

import os
from datetime import date, timedelta

import dagster as dg

# Today's partition exists from midnight (end_offset=1) so the hourly refresh can fill it.
# Telemetry older than the start date needs AGENTOPS_PARTITIONS_START set before loading.
PARTITIONS_START = os.environ.get("AGENTOPS_PARTITIONS_START", "2024-01-01")
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)


def partition_days(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> tuple[date, date]:
    """First and last day a run covers: one partition, or a range in a single-run backfill."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()
