"""The job `agentops run` and `agentops demo` run once per day with telemetry."""

import dagster as dg

from agentops_assets.defs.finops.partitions import daily_partitions

daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.groups("finops", "drift", "alerts", "governance"),
    partitions_def=daily_partitions,
    description="One day's FinOps tables, then its drift, anomalies, coordination findings and "
    "alerts (each day's drift reads the FinOps tables of the days before it), then its "
    "policy decisions, capability violations, review queue and audit ledger.",
)

defs = dg.Definitions(jobs=[daily_job])
