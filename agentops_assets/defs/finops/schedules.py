"""When the FinOps tables refresh: today's partition every hour, yesterday's once it is whole."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from agentops_assets.defs.finops.partitions import daily_partitions

finops_job = dg.define_asset_job(
    "finops_job",
    selection=dg.AssetSelection.groups("finops"),
    partitions_def=daily_partitions,
    description="Costs, reasoning cycles, daily metrics, ROI and budget compliance for the "
    "selected days.",
)


def partition_for_tick(scheduled: datetime, *, whole_day: bool) -> str:
    """The partition a tick refreshes: today's, or the day that just ended (UTC)."""
    day = scheduled.astimezone(ZoneInfo(daily_partitions.timezone)).date()
    return (day - timedelta(days=1) if whole_day else day).isoformat()


def partition_request(context: dg.ScheduleEvaluationContext, *, whole_day: bool) -> dg.RunRequest:
    """The run of one tick: today's partition, or yesterday's once it is whole."""
    scheduled = context.scheduled_execution_time
    key = partition_for_tick(scheduled, whole_day=whole_day)
    return dg.RunRequest(run_key=f"{key}@{scheduled.isoformat()}", partition_key=key)


@dg.schedule(
    job=finops_job,
    cron_schedule="10 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def finops_hourly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every hour: refresh today's partition, so spend and budget status are at most an hour old."""
    return partition_request(context, whole_day=False)


@dg.schedule(
    job=finops_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def finops_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every day at 00:30 UTC: refresh yesterday's partition now that the day is complete."""
    return partition_request(context, whole_day=True)
