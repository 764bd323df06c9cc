"""Cognitive FinOps assets: costs, reasoning cycles, daily metrics, ROI, budget compliance.

All share the daily partitions; a backfill over many days runs as one pass (single-run
backfill policy), and a refresh rewrites exactly its days. Dagster stamps a range run's
metadata on every partition of the range (dagster-io/dagster#18123), so a range run also logs
one materialization per day with that day's own figures; the UI's per-partition plots show them.
"""

import dagster as dg

from agentops_assets.defs.finops import metadata
from agentops_assets.defs.finops.partitions import partition_days
from agentops_assets.defs.partitioned import DAILY_LAKE_WRITER, report_days
from agentops_assets.defs.resources import LakeResource
from agentops_assets.finops import refresh
from agentops_assets.storage.policy_file import PolicyFileError
from agentops_assets.telemetry.schema import AGENT_EVENTS

_COMMON = {
    **DAILY_LAKE_WRITER,
    "group_name": "finops",
    "kinds": {"delta", "polars"},
    # Today's partition follows new telemetry on its own (the automation sensor evaluates it);
    # earlier days come from the schedules and backfills.
    "automation_condition": dg.AutomationCondition.eager(),
}


def _with_policies(refresh_call, *args):
    """Run a refresh that reads a policy file; a bad file fails the step with one sentence."""
    try:
        return refresh_call(*args)
    except PolicyFileError as error:
        raise dg.Failure(description=str(error)) from None


@dg.asset(deps=[AGENT_EVENTS], **_COMMON)
def event_costs(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Cost of every LLM call (and every event with a reported cost), partitioned by event_date.

    The producer's reported cost when present, else priced with genai-prices (input, output,
    cache-read, cache-write and reasoning tokens at their own rates) or policies/pricing.yaml.
    An unknown model keeps a null cost and says why in `unpriced_reason`.
    """
    first, last = partition_days(context)
    costs = _with_policies(refresh.refresh_event_costs, lake.paths, first, last)
    return report_days(context, costs, "event_date", metadata.event_costs)


@dg.asset(deps=[AGENT_EVENTS, event_costs], **_COMMON)
def reasoning_cycles(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """One row per reasoning cycle (trace), on the day it started: time to decision, steps,
    LLM and tool calls, re-prompts, retries, human interventions, final confidence, outcome,
    value, tokens and cost."""
    first, last = partition_days(context)
    cycles = refresh.refresh_reasoning_cycles(lake.paths, first, last)
    return report_days(context, cycles, "day", metadata.reasoning_cycles)


@dg.asset(deps=[reasoning_cycles], **_COMMON)
def agent_daily_metrics(
    context: dg.AssetExecutionContext, lake: LakeResource
) -> dg.MaterializeResult:
    """Per agent and day: cycles, decisions, success rate, time to decision p50/p95, confidence
    mean and p10, re-prompt, intervention and error rates, tokens, cost per reasoning cycle and
    per successful decision."""
    first, last = partition_days(context)
    daily = refresh.refresh_agent_daily_metrics(lake.paths, first, last)
    return report_days(context, daily, "day", metadata.agent_daily_metrics)


@dg.asset(deps=[agent_daily_metrics], **_COMMON)
def agent_type_roi(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Per agent type, as of each day, for the day, week and month to date: value produced,
    cost, ROI, cost per successful decision, and the trend against the previous period."""
    first, last = partition_days(context)
    roi = refresh.refresh_agent_type_roi(lake.paths, first, last)
    return report_days(context, roi, "day", metadata.agent_type_roi)


@dg.asset(deps=[event_costs], **_COMMON)
def budget_compliance(
    context: dg.AssetExecutionContext, lake: LakeResource
) -> dg.MaterializeResult:
    """Spend against each cap of policies/budgets.yaml (per agent type, daily and monthly,
    optionally per model or provider): burn rate, forecast to period end, ok/warning/breach."""
    first, last = partition_days(context)
    compliance = _with_policies(refresh.refresh_budget_compliance, lake.paths, first, last)
    return report_days(context, compliance, "day", metadata.budget_compliance)
