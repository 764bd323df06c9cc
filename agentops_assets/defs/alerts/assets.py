"""The alerts asset: findings, anomalies and budget breaches sent to the sinks of alerts.yaml."""

import dagster as dg
import polars as pl

from agentops_assets.alerts import ALERTS_SENT, AlertsPolicyError, collect_alerts, deliver
from agentops_assets.defs.drift.assets import behavior_anomalies, coordination_findings
from agentops_assets.defs.drift.metadata import table
from agentops_assets.defs.finops.assets import budget_compliance
from agentops_assets.defs.finops.partitions import daily_partitions, partition_days
from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.telemetry.assets import LAKE_WRITERS_POOL
from agentops_assets.drift.tables import DRIFT_FINDINGS
from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS

_SINK_COLUMNS = {
    "sink": "string",
    "delivered": "int",
    "failed": "int",
    "not_configured": "int",
    "pending": "int",
    "not_due": "int",
    "already_delivered": "int",
}


@dg.asset(
    name=ALERTS_SENT,
    deps=[
        DRIFT_FINDINGS,
        behavior_anomalies,
        coordination_findings,
        budget_compliance,
        CAPABILITY_VIOLATIONS,
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=LAKE_WRITERS_POOL,
    group_name="alerts",
    kinds={"delta"},
    automation_condition=dg.AutomationCondition.eager(),
)
def alerts_sent(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Every drift finding, top anomaly, coordination finding and budget warning or breach of
    the days, routed by policies/alerts.yaml to its sinks (a JSONL file by default, webhooks,
    Slack) once each; failed deliveries are retried on later runs with backoff."""
    first, last = partition_days(context)
    try:
        alerts = collect_alerts(lake.paths, first, last)
        report = deliver(lake.paths, alerts)
    except AlertsPolicyError as error:
        raise dg.Failure(description=str(error)) from None
    context.log.info(report.summary())
    sinks = pl.DataFrame(report.to_rows()) if report.sinks else pl.DataFrame()
    return dg.MaterializeResult(
        metadata={
            "alerts": dg.MetadataValue.int(report.alerts),
            "delivered": dg.MetadataValue.int(report.total("delivered")),
            "failed": dg.MetadataValue.int(report.total("failed")),
            "summary": dg.MetadataValue.text(report.summary()),
            "sinks": table(sinks, _SINK_COLUMNS if report.sinks else {}),
        }
    )
