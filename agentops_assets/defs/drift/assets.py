"""Drift assets: behaviour baselines and drift findings, anomalies, coordination findings.

They share the FinOps daily partitions: a day's drift is that day against the days before it,
so it follows the day's ``reasoning_cycles``. A backfill runs as one pass (single-run backfill
policy); a range run logs each day's own figures for the UI's per-partition plots.
"""

import dagster as dg

from agentops_assets.defs.drift import metadata
from agentops_assets.defs.finops.assets import reasoning_cycles
from agentops_assets.defs.finops.partitions import partition_days
from agentops_assets.defs.partitioned import DAILY_LAKE_WRITER, report_days
from agentops_assets.defs.resources import LakeResource
from agentops_assets.drift import refresh
from agentops_assets.drift.tables import (
    BEHAVIOR_ANOMALIES,
    BEHAVIOR_BASELINES,
    COORDINATION_FINDINGS,
    DRIFT_FINDINGS,
)
from agentops_assets.storage.policy_file import PolicyFileError
from agentops_assets.telemetry.schema import AGENT_EVENTS

GROUP = "drift"
# Today's partition follows new cycles on its own, like the FinOps tables.
_EAGER = dg.AutomationCondition.eager()


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            BEHAVIOR_BASELINES,
            deps=[reasoning_cycles, AGENT_EVENTS],
            description="Per day, agent type and agent, and metric: the trailing baseline "
            "(policies/drift.yaml: 14 days by default, each day weighted equally) and the day's "
            "own value.",
            group_name=GROUP,
            kinds={"delta", "polars"},
            automation_condition=_EAGER,
        ),
        dg.AssetSpec(
            DRIFT_FINDINGS,
            deps=[BEHAVIOR_BASELINES],
            description="One row per metric that drifted from its baseline on a day, for a "
            "whole agent type or one agent: the test, its p-value after Benjamini-Hochberg "
            "control, the effect size, severity and one sentence.",
            group_name=GROUP,
            kinds={"delta", "scipy"},
            automation_condition=_EAGER,
        ),
    ],
    **DAILY_LAKE_WRITER,
)
def behavior_drift(context: dg.AssetExecutionContext, lake: LakeResource):
    """Baselines and drift findings come from one pass over the cycles."""
    first, last = partition_days(context)
    try:
        result = refresh.refresh_drift(lake.paths, first, last)
    except PolicyFileError as error:
        raise dg.Failure(description=str(error)) from None
    context.log.info(
        f"{result.findings.height} drift finding(s) over {first}..{last} "
        f"from {result.baselines.height} baseline rows"
    )
    yield report_days(
        context,
        result.baselines,
        "day",
        metadata.baselines,
        asset_key=dg.AssetKey(BEHAVIOR_BASELINES),
    )
    yield report_days(
        context, result.findings, "day", metadata.findings, asset_key=dg.AssetKey(DRIFT_FINDINGS)
    )


@dg.asset(
    name=BEHAVIOR_ANOMALIES,
    deps=[reasoning_cycles, AGENT_EVENTS],
    group_name=GROUP,
    kinds={"delta", "scikitlearn"},
    automation_condition=_EAGER,
    **DAILY_LAKE_WRITER,
)
def behavior_anomalies(
    context: dg.AssetExecutionContext, lake: LakeResource
) -> dg.MaterializeResult:
    """Reasoning cycles unlike their agent type's recent ones: an IsolationForest per type,
    fitted on the trailing window's cycles, scores the day's; each flagged cycle with its rank
    in the day and the reasons in words (e.g. an action never seen for the type)."""
    first, last = partition_days(context)
    found = refresh.refresh_anomalies(lake.paths, first, last)
    return report_days(context, found, "day", metadata.anomalies)


@dg.asset(
    name=COORDINATION_FINDINGS,
    deps=[AGENT_EVENTS],
    group_name=GROUP,
    kinds={"delta", "polars"},
    automation_condition=_EAGER,
    **DAILY_LAKE_WRITER,
)
def coordination_findings(
    context: dg.AssetExecutionContext, lake: LakeResource
) -> dg.MaterializeResult:
    """Poor orchestration between agents: loops, duplicated work, conflicting decisions,
    delegation cycles and missed deadlines, each with the ids of its evidence events."""
    first, last = partition_days(context)
    found = refresh.refresh_coordination(lake.paths, first, last)
    return report_days(context, found, "day", metadata.coordination)
