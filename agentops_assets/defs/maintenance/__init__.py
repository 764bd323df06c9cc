"""Housekeeping: compaction and vacuum of the lake, snapshot pruning of the index, daily."""

import dagster as dg

from agentops_assets.defs.maintenance.assets import lake_maintenance
from agentops_assets.defs.maintenance.schedules import maintenance_daily_schedule, maintenance_job

defs = dg.Definitions(
    assets=[lake_maintenance],
    jobs=[maintenance_job],
    schedules=[maintenance_daily_schedule],
)
