"""Drift checks: no critical drift, no behaviour anomalies, on the days a run refreshed."""

import dagster as dg
import polars as pl

from agentops_assets.defs.drift.assets import behavior_anomalies
from agentops_assets.defs.drift.metadata import anomalies, findings
from agentops_assets.defs.partitioned import partition_rows
from agentops_assets.defs.resources import LakeResource
from agentops_assets.drift.tables import BEHAVIOR_ANOMALIES, DRIFT_FINDINGS

_SHOWN = 5  # findings named in a check's description


@dg.asset_check(asset=dg.AssetKey(DRIFT_FINDINGS), blocking=False)
def no_critical_drift(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """No metric drifted: a warning finding fails with WARN, a critical one with ERROR; the
    description names type, metric, day and both values."""
    rows = partition_rows(context, lake, DRIFT_FINDINGS, "day")
    if rows is None or rows.is_empty():
        return dg.AssetCheckResult(passed=True, description="No drift.", metadata={"findings": 0})
    critical = rows.filter(pl.col("severity") == "critical")
    shown = (critical if critical.height else rows).sort("effect_size", descending=True)
    more = rows.height - min(_SHOWN, shown.height)
    description = " ".join(shown["detail"].head(_SHOWN).to_list())
    if more:
        description += f" (and {more} more)"
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR if critical.height else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=findings(rows),
    )


@dg.asset_check(asset=behavior_anomalies, blocking=False)
def no_behavior_anomalies(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """No reasoning cycle was flagged as anomalous; otherwise WARN with the top ones."""
    rows = partition_rows(context, lake, BEHAVIOR_ANOMALIES, "day")
    if rows is None or rows.is_empty():
        return dg.AssetCheckResult(
            passed=True, description="No anomalous cycle.", metadata={"anomalies": 0}
        )
    top = rows.sort("score", descending=True).head(_SHOWN)
    description = "; ".join(
        f"{row['agent_id']} on {row['day']}: {row['reasons']}" for row in top.iter_rows(named=True)
    )
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{rows.height} anomalous cycle(s). {description}",
        metadata=anomalies(rows),
    )
