"""When drift refreshes: today's partition every hour, yesterday's after FinOps has closed it."""

import dagster as dg

from agentops_assets.defs.finops.partitions import daily_partitions
from agentops_assets.defs.finops.schedules import partition_request

drift_job = dg.define_asset_job(
    "drift_job",
    selection=dg.AssetSelection.groups("drift", "alerts"),
    partitions_def=daily_partitions,
    description="Behaviour baselines, drift findings, anomalies, coordination findings and the "
    "alerts they raise, for the selected days.",
)


@dg.schedule(
    job=drift_job,
    cron_schedule="25 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def drift_hourly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every hour, after the FinOps refresh at :10: today's drift, anomalies and alerts."""
    return partition_request(context, whole_day=False)


@dg.schedule(
    job=drift_job,
    cron_schedule="50 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def drift_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every day at 00:50 UTC, after FinOps closed yesterday at 00:30: yesterday's drift."""
    return partition_request(context, whole_day=True)
