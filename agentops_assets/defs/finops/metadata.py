"""What the Dagster UI shows for each FinOps materialization, of one day or of a range.

Numbers are plain metadata values, so the UI plots them across materializations; tables are
Dagster tables with typed columns. Every function takes the frame the refresh just wrote, or
one day's rows of it, so the same figures describe a whole range or a single day.
"""

from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from agentops_assets.defs.metadata_table import table
from agentops_assets.finops.compliance import compliance_findings

TOP = 10


def _float(value: float | None, digits: int = 4) -> dg.MetadataValue:
    return dg.MetadataValue.float(round(float(value or 0.0), digits))


def _money(value: float | None) -> dg.MetadataValue:
    return _float(value, 2)


def covered(first: date, last: date) -> dict[str, Any]:
    """Which days the metadata is for: one day, or a range (its tables cover the whole range)."""
    if first == last:
        return {"day": dg.MetadataValue.text(first.isoformat())}
    count = (last - first).days + 1
    return {
        "range": dg.MetadataValue.text(
            f"{first} .. {last} ({count} days; tables for the range, each day's figures "
            "on that day's own materialization)"
        )
    }


def event_costs(costs: pl.DataFrame) -> dict[str, Any]:
    llm = costs.filter(pl.col("kind") == "llm_call")
    unpriced = costs.filter(pl.col("cost_usd").is_null())
    by_model = (
        costs.group_by("provider_id", "model", "cost_source")
        .agg(pl.len().alias("calls"), pl.col("cost_usd").sum().alias("spend"))
        .sort("spend", descending=True, nulls_last=True)
        .head(TOP)
    )
    return {
        "llm_calls": dg.MetadataValue.int(llm.height),
        "unpriced_calls": dg.MetadataValue.int(unpriced.height),
        "spend_usd": _money(costs["cost_usd"].sum()),
        "reported_usd": _money(costs["reported_cost_usd"].sum()),
        "top_models": table(
            by_model,
            [
                dg.TableColumn("provider_id"),
                dg.TableColumn("model"),
                dg.TableColumn("cost_source"),
                dg.TableColumn("calls", "int"),
                dg.TableColumn("spend", "float", "USD; null when a call has no price"),
            ],
        ),
    }


def reasoning_cycles(cycles: pl.DataFrame) -> dict[str, Any]:
    stats = cycles.select(
        pl.len().alias("cycles"),
        pl.col("decisions").sum(),
        pl.col("time_to_decision_ms").median().alias("p50"),
        (pl.col("reprompts").sum() / pl.len()).alias("reprompts"),
        (pl.col("human_interventions").sum() / pl.len()).alias("interventions"),
    ).row(0, named=True)
    return {
        "cycles": dg.MetadataValue.int(stats["cycles"]),
        "decisions": dg.MetadataValue.int(int(stats["decisions"] or 0)),
        "time_to_decision_p50_ms": _float(stats["p50"]),
        "reprompts_per_cycle": _float(stats["reprompts"]),
        "interventions_per_cycle": _float(stats["interventions"]),
    }


def agent_daily_metrics(daily: pl.DataFrame) -> dict[str, Any]:
    totals = daily.select(
        pl.col("cost_usd").sum(), pl.col("successful_decisions").sum(), pl.col("decisions").sum()
    ).row(0, named=True)
    successes = totals["successful_decisions"] or 0
    top = (
        daily.group_by("agent_id", "agent_type")
        .agg(
            pl.col("cycles").sum(),
            pl.col("cost_usd").sum(),
            pl.col("successful_decisions").sum(),
        )
        .with_columns(
            (pl.col("cost_usd") / pl.col("successful_decisions").replace(0, None)).alias(
                "per_success"
            )
        )
        .sort("cost_usd", descending=True)
        .head(TOP)
    )
    return {
        "spend_usd": _money(totals["cost_usd"]),
        "cost_per_successful_decision_usd": _float(
            totals["cost_usd"] / successes if successes else None
        ),
        "success_rate": _float(successes / totals["decisions"] if totals["decisions"] else None),
        "top_spenders": table(
            top,
            [
                dg.TableColumn("agent_id"),
                dg.TableColumn("agent_type"),
                dg.TableColumn("cycles", "int"),
                dg.TableColumn("cost_usd", "float"),
                dg.TableColumn("per_success", "float", "USD per successful decision"),
            ],
        ),
    }


_ROI_COLUMNS = [
    dg.TableColumn("agent_type"),
    dg.TableColumn("value_usd", "float"),
    dg.TableColumn("cost_usd", "float"),
    dg.TableColumn("roi", "float", "(value - cost) / cost"),
    dg.TableColumn("cost_per_successful_decision_usd", "float"),
    dg.TableColumn("trend"),
]


def agent_type_roi(roi: pl.DataFrame) -> dict[str, Any]:
    if roi.is_empty():  # no figures to plot: a month-to-date ROI of 0 would be false
        return {"roi_by_agent_type": table(roi, _ROI_COLUMNS)}
    latest = roi.filter(
        (pl.col("day") == pl.col("day").max()) & (pl.col("period") == "month")
    ).sort("cost_usd", descending=True)
    value, cost = latest["value_usd"].sum(), latest["cost_usd"].sum()
    return {
        "month_to_date_value_usd": _money(value),
        "month_to_date_cost_usd": _money(cost),
        "month_to_date_roi": _float((value - cost) / cost if cost else None),
        "roi_by_agent_type": table(latest, _ROI_COLUMNS),
    }


def budget_compliance(compliance: pl.DataFrame) -> dict[str, Any]:
    findings = compliance_findings(compliance)
    latest = compliance.filter(pl.col("day") == pl.col("day").max()).sort(
        "pct_of_cap", descending=True
    )
    return {
        "breaches": dg.MetadataValue.int(findings.filter(pl.col("status") == "breach").height),
        "warnings": dg.MetadataValue.int(findings.filter(pl.col("status") == "warning").height),
        "max_pct_of_cap": _float(latest["pct_of_cap"].max()),
        "findings": table(
            findings.head(TOP * 2),
            [dg.TableColumn("day"), dg.TableColumn("status"), dg.TableColumn("detail")],
        ),
        "latest_day": table(
            latest.head(TOP * 2),
            [
                dg.TableColumn("budget_id"),
                dg.TableColumn("period"),
                dg.TableColumn("spend_usd", "float"),
                dg.TableColumn("cap_usd", "float"),
                dg.TableColumn("pct_of_cap", "float", "spend / cap (1.0: at the cap)"),
                dg.TableColumn("forecast_usd", "float"),
                dg.TableColumn("status"),
            ],
        ),
    }
