"""Governance assets: every past action judged by the policies, capability violations, the
review queue and the audit ledger.

They share the FinOps daily partitions and follow the day's drift and budget findings, which
are part of an action's context.
"""

import dagster as dg

from agentops_assets.defs.finops.partitions import partition_days
from agentops_assets.defs.governance import metadata
from agentops_assets.defs.partitioned import DAILY_LAKE_WRITER, report_days
from agentops_assets.defs.resources import LakeResource
from agentops_assets.drift.tables import DRIFT_FINDINGS
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance import refresh
from agentops_assets.governance.engine import PolicyBundleError
from agentops_assets.governance.ledger import AUDIT_LEDGER
from agentops_assets.governance.review import reviews
from agentops_assets.governance.tables import (
    CAPABILITY_VIOLATIONS,
    POLICY_DECISIONS,
    REVIEW_QUEUE,
)
from agentops_assets.telemetry.schema import AGENT_EVENTS

GROUP = "governance"
_EAGER = dg.AutomationCondition.eager()


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            POLICY_DECISIONS,
            deps=[AGENT_EVENTS, DRIFT_FINDINGS, BUDGET_COMPLIANCE],
            description="Every tool call and decision of the day judged by policies/*.rego, in "
            "the shape of OPA's decision logs (decision_id, path, input, result, bundles, "
            "timestamp) plus the event, agent, zone, reasons and bundle revision.",
            group_name=GROUP,
            kinds={"delta", "rego"},
            automation_condition=_EAGER,
        ),
        dg.AssetSpec(
            CAPABILITY_VIOLATIONS,
            deps=[AGENT_EVENTS],
            description="Every tool call of the day outside its agent type's entry in "
            "policies/capabilities.yaml, with the rule it broke.",
            group_name=GROUP,
            kinds={"delta", "polars"},
            automation_condition=_EAGER,
        ),
    ],
    **DAILY_LAKE_WRITER,
)
def policy_decisions(context: dg.AssetExecutionContext, lake: LakeResource):
    """Decisions and violations come from one read of the day's events."""
    first, last = partition_days(context)
    try:
        judged = refresh.refresh_decisions(lake.paths, first, last)
    except PolicyBundleError as error:
        raise dg.Failure(description=str(error)) from None
    context.log.info(
        f"{judged.decisions.height:,} actions judged over {first}..{last} with "
        f"{judged.evaluations:,} evaluations (revision {judged.policies.revision[:12]}); "
        f"{judged.violations.height:,} capability violations"
    )
    yield report_days(
        context,
        judged.decisions,
        "day",
        metadata.decisions,
        asset_key=dg.AssetKey(POLICY_DECISIONS),
    )
    yield report_days(
        context,
        judged.violations,
        "day",
        metadata.violations,
        asset_key=dg.AssetKey(CAPABILITY_VIOLATIONS),
    )


@dg.asset(
    name=REVIEW_QUEUE,
    deps=[POLICY_DECISIONS],
    group_name=GROUP,
    kinds={"delta"},
    automation_condition=_EAGER,
    **DAILY_LAKE_WRITER,
)
def review_queue(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Actions waiting for a human: every red-zone decision and the yellow ones the policy
    samples; `agentops review approve|reject` decides them. A day judged again never resets
    an item."""
    first, last = partition_days(context)
    added = refresh.refresh_reviews(lake.paths, first, last)
    pending = reviews(lake.paths, "pending")
    return dg.MaterializeResult(metadata=metadata.queue(added, pending))


@dg.asset(
    name=AUDIT_LEDGER,
    deps=[POLICY_DECISIONS, REVIEW_QUEUE, "memory_facts"],
    group_name=GROUP,
    kinds={"delta"},
    automation_condition=_EAGER,
    **DAILY_LAKE_WRITER,
)
def audit_ledger(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """The append-only, hash-chained record of governance events: yellow and red decisions,
    approvals and rejections, memory commits and rollbacks, policy bundle changes. Its head
    (seq and hash) is published here and in $AGENTOPS_HOME/audit/anchors.jsonl, so a cut tail
    is found too; `agentops audit verify` checks it all."""
    first, last = partition_days(context)
    update = refresh.refresh_ledger(lake.paths, first, last)
    appended = {
        "decisions": update.decisions,
        "reviews": update.reviews,
        "memory": update.memory,
        "bundle_changes": int(update.bundle_changed),
    }
    context.log.info(
        ", ".join(f"{count:,} {kind}" for kind, count in appended.items()) + " appended"
    )
    return dg.MaterializeResult(metadata=metadata.ledger(update.report, appended))
