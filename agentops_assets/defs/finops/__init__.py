"""Cognitive FinOps: costs, reasoning cycles, daily metrics, ROI, budgets, their schedules."""

import dagster as dg

from agentops_assets.defs.finops.assets import (
    agent_daily_metrics,
    agent_type_roi,
    budget_compliance,
    event_costs,
    reasoning_cycles,
)
from agentops_assets.defs.finops.checks import all_models_priced, budget_within_caps
from agentops_assets.defs.finops.schedules import (
    finops_daily_schedule,
    finops_hourly_schedule,
    finops_job,
)

defs = dg.Definitions(
    assets=[event_costs, reasoning_cycles, agent_daily_metrics, agent_type_roi, budget_compliance],
    asset_checks=[all_models_priced, budget_within_caps],
    jobs=[finops_job],
    schedules=[finops_hourly_schedule, finops_daily_schedule],
)
