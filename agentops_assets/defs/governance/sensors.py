"""Re-judge recent days when the policies change, and record the change in the ledger."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from agentops_assets.defs.finops.partitions import daily_partitions
from agentops_assets.defs.resources import LakeResource
from agentops_assets.governance.audit import ledger, record_bundle_change
from agentops_assets.governance.judge import STATS_WINDOW_DAYS, load_policies
from agentops_assets.governance.tables import POLICY_DECISIONS
from agentops_assets.storage import lake as lake_io

governance_job = dg.define_asset_job(
    "governance_job",
    selection=dg.AssetSelection.groups("governance"),
    partitions_def=daily_partitions,
    description="Policy decisions, capability violations, the review queue and the audit "
    "ledger for the selected days.",
)


@dg.sensor(
    job=governance_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def policy_change_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """When the policy files (policies/*.rego, capabilities.yaml) change revision: records the
    change in the audit ledger and judges the days already judged in the last 30 days again
    under the new revision, one run per day."""
    paths = lake.paths
    policies = load_policies(paths)
    watched = context.cursor
    if watched == policies.revision:
        return dg.SkipReason(f"Policies unchanged (revision {policies.revision[:12]}).")
    recorded = record_bundle_change(ledger(paths), policies)
    context.update_cursor(policies.revision)
    if watched is None and not recorded:
        return dg.SkipReason(f"Watching policy revision {policies.revision[:12]}.")
    decided = lake_io.scan(paths.table_uri(POLICY_DECISIONS))
    if decided is None:
        return dg.SkipReason("The policies changed; nothing has been judged yet.")
    since = datetime.now(UTC).date() - timedelta(days=STATS_WINDOW_DAYS)
    days = (
        decided.filter(pl.col("day") >= since)
        .select(pl.col("day").unique().sort())
        .collect()["day"]
    )
    keys = set(daily_partitions.get_partition_keys())
    return [
        dg.RunRequest(
            run_key=f"{policies.revision}:{day.isoformat()}", partition_key=day.isoformat()
        )
        for day in days
        if day.isoformat() in keys
    ]
