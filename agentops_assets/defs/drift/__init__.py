"""Behaviour drift and anomalies: baselines, findings, anomalies, coordination, their checks
and schedules."""

import dagster as dg

from agentops_assets.defs.drift.assets import (
    behavior_anomalies,
    behavior_drift,
    coordination_findings,
)
from agentops_assets.defs.drift.checks import no_behavior_anomalies, no_critical_drift
from agentops_assets.defs.drift.schedules import (
    drift_daily_schedule,
    drift_hourly_schedule,
    drift_job,
)

defs = dg.Definitions(
    assets=[behavior_drift, behavior_anomalies, coordination_findings],
    asset_checks=[no_critical_drift, no_behavior_anomalies],
    jobs=[drift_job],
    schedules=[drift_hourly_schedule, drift_daily_schedule],
)
