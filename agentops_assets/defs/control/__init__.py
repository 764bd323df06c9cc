"""Control: the autonomy states, their check, the findings sensor and the daily schedule."""

import dagster as dg

from agentops_assets.defs.control.assets import autonomy_state
from agentops_assets.defs.control.chaos import chaos_job, chaos_weekly_schedule
from agentops_assets.defs.control.checks import no_frozen_agents
from agentops_assets.defs.control.sensors import (
    control_daily_schedule,
    control_job,
    findings_sensor,
)

defs = dg.Definitions(
    assets=[autonomy_state],
    asset_checks=[no_frozen_agents],
    jobs=[control_job, chaos_job],
    sensors=[findings_sensor],
    schedules=[control_daily_schedule, chaos_weekly_schedule],
)
