"""Alerts: drift, anomalies, coordination and budget findings delivered to their sinks."""

import dagster as dg

from agentops_assets.defs.alerts.assets import alerts_sent

defs = dg.Definitions(assets=[alerts_sent])
