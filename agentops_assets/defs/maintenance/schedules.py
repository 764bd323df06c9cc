"""When maintenance runs: once a day, at a quiet hour between FinOps refreshes."""

import dagster as dg

maintenance_job = dg.define_asset_job(
    "maintenance_job",
    selection=dg.AssetSelection.groups("maintenance"),
    description="Compact and vacuum every Delta table; prune old index snapshots.",
)

maintenance_daily_schedule = dg.ScheduleDefinition(
    name="maintenance_daily_schedule",
    job=maintenance_job,
    cron_schedule="15 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 03:15 UTC: lake and index maintenance (policies/maintenance.yaml).",
)
