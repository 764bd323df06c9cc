"""The FinOps report as terminal tables: spend against budget, value and ROI, top spenders."""

from __future__ import annotations

from datetime import date
from typing import Literal

import click
import polars as pl
from rich.console import Console
from rich.table import Table

from agentops_assets.finops.compliance import compliance_findings
from agentops_assets.finops.formats import dollars, pct, times, usd
from agentops_assets.finops.tables import (
    AGENT_DAILY_METRICS,
    AGENT_TYPE_ROI,
    BUDGET_COMPLIANCE,
)
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

console = Console()
Period = Literal["day", "month"]
_TEXT_COLUMNS = frozenset({"agent type", "agent", "type", "status", "day", "what happened"})
_STATUS_STYLE = {"ok": "green", "warning": "yellow", "breach": "bold red"}


class ReportError(click.ClickException):
    """The report cannot be made: tables missing or the date outside them."""


def _table(paths: Paths, name: str) -> pl.LazyFrame:
    frame = lake.scan(paths.table_uri(name))
    if frame is None:
        raise ReportError(
            f"There is no {name} table under {paths.lake_uri}; run `agentops run` "
            "(or `agentops demo`) first."
        )
    return frame


def print_report(
    paths: Paths, *, period: Period, day: date | None, findings_from: date | None = None
) -> None:
    """Print the FinOps report of ``period`` as of ``day`` (default: the latest day).

    Budget findings are those as of ``day``, or of every day from ``findings_from`` on.
    """
    compliance = _table(paths, BUDGET_COMPLIANCE)
    roi = _table(paths, AGENT_TYPE_ROI)
    daily = _table(paths, AGENT_DAILY_METRICS)
    covered = roi.select(pl.col("day").min().alias("a"), pl.col("day").max().alias("b")).collect()
    first, last = covered.row(0)
    if last is None:
        raise ReportError("The FinOps tables are empty; ingest telemetry and run `agentops run`.")
    day = day or last
    if not first <= day <= last:
        raise ReportError(f"No FinOps rows for {day}; the tables cover {first} .. {last}.")
    start = day.replace(day=1) if period == "month" else day
    label = f"{start:%B %Y} to {day}" if period == "month" else str(day)
    console.print(f"[bold]Cognitive FinOps[/], {label}")
    _print_types(
        roi.filter((pl.col("day") == day) & (pl.col("period") == period)).collect(),
        compliance.filter(
            (pl.col("day") == day)
            & (pl.col("period") == period)
            & pl.col("provider").is_null()
            & pl.col("model").is_null()
        ).collect(),
        title=label,
    )
    _print_top_agents(daily.filter(pl.col("day").is_between(start, day)).collect(), label)
    since = findings_from or day
    print_findings(
        compliance.filter(pl.col("day").is_between(since, day)).collect(),
        title=f"Budget findings as of {day}"
        if since == day
        else f"Budget findings {since} .. {day}",
    )


def _print_types(roi: pl.DataFrame, caps: pl.DataFrame, *, title: str) -> None:
    rows = roi.join(
        caps.select("agent_type", "cap_usd", "pct_of_cap", "forecast_usd", "status"),
        on="agent_type",
        how="left",
    ).sort("cost_usd", descending=True)
    spend = _new_table(f"Spend against budget, {title}", "agent type", "spend", "cap", "of cap",
                       "forecast", "status")  # fmt: skip
    value = _new_table(f"Value and ROI, {title}", "agent type", "cycles", "success", "value",
                       "ROI", "per success", "trend")  # fmt: skip
    for r in rows.iter_rows(named=True):
        status = r["status"] or "no cap"
        spend.add_row(
            r["agent_type"],
            usd(r["cost_usd"]),
            usd(r["cap_usd"]),
            pct(r["pct_of_cap"]),
            usd(r["forecast_usd"]),
            f"[{_STATUS_STYLE.get(status, 'dim')}]{status}[/]",
        )
        value.add_row(
            r["agent_type"],
            f"{r['cycles']:,}",
            pct(r["success_rate"]),
            dollars(r["value_usd"]),
            times(r["roi"]),
            usd(r["cost_per_successful_decision_usd"]),
            r["trend"] or "-",
        )
    console.print(spend)
    console.print(value)


def _new_table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for n, column in enumerate(columns):
        # The first column names the row: never cut it short.
        justify = "left" if column in _TEXT_COLUMNS else "right"
        table.add_column(column, justify=justify, no_wrap=n == 0, min_width=12 if n == 0 else None)
    return table


def _print_top_agents(daily: pl.DataFrame, label: str, *, top: int = 10) -> None:
    agents = (
        daily.group_by("agent_id", "agent_type")
        .agg(pl.col("cycles", "successful_decisions", "cost_usd", "value_usd").sum())
        .sort("cost_usd", descending=True)
        .head(top)
    )
    table = _new_table(
        f"Top {top} spenders, {label}", "agent", "type", "cycles", "spend", "per success", "value"
    )
    for r in agents.iter_rows(named=True):
        per = r["cost_usd"] / r["successful_decisions"] if r["successful_decisions"] else None
        table.add_row(
            r["agent_id"],
            r["agent_type"],
            f"{r['cycles']:,}",
            usd(r["cost_usd"]),
            usd(per),
            dollars(r["value_usd"]),
        )
    console.print(table)


def print_findings(compliance: pl.DataFrame, *, title: str) -> None:
    """Breaches first, then warnings, one line each; or a line saying all is within caps."""
    findings = compliance_findings(compliance)
    if findings.is_empty():
        console.print(f"{title}: [green]every agent type is within its caps.[/]")
        return
    table = _new_table(title, "day", "status", "what happened")
    for r in findings.iter_rows(named=True):
        style = _STATUS_STYLE[r["status"]]
        table.add_row(str(r["day"]), f"[{style}]{r['status']}[/]", r["detail"])
    console.print(table)
