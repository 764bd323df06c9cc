"""FinOps asset checks: every model has a price, and spend stays within its caps."""

import dagster as dg
import polars as pl

from agentops_assets.defs.finops.assets import budget_compliance, event_costs
from agentops_assets.defs.finops.metadata import TOP, table
from agentops_assets.defs.partitioned import partition_rows
from agentops_assets.defs.resources import LakeResource
from agentops_assets.finops.compliance import compliance_findings
from agentops_assets.finops.pricing import unpriced_models
from agentops_assets.finops.tables import BUDGET_COMPLIANCE, EVENT_COSTS


@dg.asset_check(asset=event_costs)
def all_models_priced(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Every LLM call has a cost: reported, from genai-prices or from policies/pricing.yaml."""
    costs = partition_rows(context, lake, EVENT_COSTS, "event_date")
    if costs is None:
        return dg.AssetCheckResult(passed=True, metadata={"llm_calls": 0})
    missing = unpriced_models(costs)
    names = ", ".join(f"{m} ({p})" for p, m in missing.select("provider", "model").head(TOP).rows())
    return dg.AssetCheckResult(
        passed=missing.is_empty(),
        description=f"No price for: {names}." if names else "Every model has a price.",
        metadata={
            "unpriced_models": dg.MetadataValue.int(missing.height),
            "unpriced_calls": dg.MetadataValue.int(int(missing["calls"].sum() or 0)),
            "models": table(
                missing,
                [
                    dg.TableColumn("provider"),
                    dg.TableColumn("model"),
                    dg.TableColumn("calls", "int"),
                    dg.TableColumn("reason"),
                ],
            ),
        },
    )


@dg.asset_check(asset=budget_compliance)
def budget_within_caps(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """No agent type over a cap; a warning once spend reaches the warning level (or the month's
    forecast passes the cap), a failure on a breach."""
    compliance = partition_rows(context, lake, BUDGET_COMPLIANCE, "day")
    if compliance is None:
        return dg.AssetCheckResult(passed=True, metadata={"budgets": 0})
    findings = compliance_findings(compliance)
    breaches = findings.filter(pl.col("status") == "breach")
    severity = dg.AssetCheckSeverity.ERROR if breaches.height else dg.AssetCheckSeverity.WARN
    shown = breaches if breaches.height else findings
    overspend = float((breaches["spend_usd"] - breaches["cap_usd"]).sum())
    return dg.AssetCheckResult(
        passed=findings.is_empty(),
        severity=severity,
        description=" ".join(shown["detail"].head(3)) or "Every agent type is within its caps.",
        metadata={
            "breaches": dg.MetadataValue.int(breaches.height),
            "warnings": dg.MetadataValue.int(findings.height - breaches.height),
            "overspend_usd": dg.MetadataValue.float(round(overspend, 2)),
            "findings": table(
                findings.head(TOP * 2),
                [
                    dg.TableColumn("day"),
                    dg.TableColumn("budget_id"),
                    dg.TableColumn("period"),
                    dg.TableColumn("spend_usd", "float"),
                    dg.TableColumn("cap_usd", "float"),
                    dg.TableColumn("status"),
                ],
            ),
        },
    )
