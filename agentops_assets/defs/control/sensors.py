"""Re-evaluate the autonomy states when new findings land, and every day as holds expire."""

import dagster as dg

from agentops_assets.control.tables import AUTONOMY_STATE
from agentops_assets.defs.control.assets import EVIDENCE

control_job = dg.define_asset_job(
    "control_job",
    selection=dg.AssetSelection.assets(AUTONOMY_STATE),
    description="Today's autonomy states, the control file and their ledger entries.",
)


@dg.sensor(
    job=control_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING
)
def findings_sensor(context: dg.SensorEvaluationContext):
    """A new materialization of drift_findings, behavior_anomalies, capability_violations or
    budget_compliance requests one evaluation of the states (its run key: the newest one)."""
    newest = 0
    for name in EVIDENCE:
        records = context.instance.fetch_materializations(dg.AssetKey(name), limit=1).records
        if records:
            newest = max(newest, records[0].storage_id)
    if newest == 0:
        return dg.SkipReason("No findings materialized yet.")
    if context.cursor is not None and int(context.cursor) >= newest:
        return dg.SkipReason("No new findings since the last evaluation.")
    context.update_cursor(str(newest))
    return dg.RunRequest(run_key=f"findings-{newest}")


@dg.schedule(
    job=control_job,
    cron_schedule="55 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def control_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every day at 00:55 UTC (after drift closed yesterday): states whose quiet period ended
    relax even when no finding lands."""
    return dg.RunRequest()
