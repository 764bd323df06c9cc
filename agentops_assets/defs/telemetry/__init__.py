"""Telemetry lakehouse: ingestion assets, their checks, the landing sensor."""

import dagster as dg

from agentops_assets.defs.telemetry.assets import telemetry_ingestion
from agentops_assets.defs.telemetry.checks import event_ids_unique, records_accounted_for
from agentops_assets.defs.telemetry.sensors import ingest_job, landing_sensor

defs = dg.Definitions(
    assets=[telemetry_ingestion],
    asset_checks=[event_ids_unique, records_accounted_for],
    jobs=[ingest_job],
    sensors=[landing_sensor],
)
