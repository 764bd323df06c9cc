"""``agentops drift report`` and ``agentops anomalies``: what changed in agent behaviour."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import click
from rich.console import Console
from rich.table import Table

from agentops_assets.storage.config import Paths

console = Console()
SPARK = "▁▂▃▄▅▆▇█"
_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow"}


class DriftReportError(click.ClickException):
    """The report cannot be made: tables missing, or the date or type unknown."""


@click.group()
def drift() -> None:
    """Behaviour drift: each agent type and agent against its own recent past.

    \b
    Example:
      agentops drift report --date 2026-11-20 --agent-type FinanceAgent
    """


@drift.command()
@click.option(
    "--date",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Day to report (default: the latest day in behavior_baselines).",
)
@click.option("--agent-type", help="Only this agent type (default: every type).")
def report(day: datetime | None, agent_type: str | None) -> None:
    """The day's drift findings, and every metric against its baseline with a 14-day trend.

    Reads drift_findings and behavior_baselines (run `agentops run` first to refresh them).

    \b
    Example:
      agentops drift report --date 2026-11-20
    """
    import polars as pl

    from agentops_assets.drift.metrics import METRICS, format_value
    from agentops_assets.drift.tables import BEHAVIOR_BASELINES, DRIFT_FINDINGS

    paths = Paths.from_env()
    baselines = _scan(paths, BEHAVIOR_BASELINES).filter(pl.col("agent_id").is_null())
    chosen = _day(baselines, day)
    types = baselines.filter(pl.col("day") == chosen).select("agent_type").unique().collect()
    known = sorted(types["agent_type"].to_list())
    if agent_type is not None and agent_type not in known:
        raise DriftReportError(
            f"No agent type {agent_type!r} on {chosen}; expected one of {', '.join(known)}."
        )
    shown = [agent_type] if agent_type else known
    findings = (
        _scan(paths, DRIFT_FINDINGS)
        .filter((pl.col("day") == chosen) & pl.col("agent_type").is_in(shown))
        .sort(pl.col("severity") == "critical", "effect_size", descending=True)
        .collect()
    )
    _print_findings(findings, chosen, format_value)
    history = (
        baselines.filter(
            pl.col("day").is_between(chosen - timedelta(days=13), chosen)
            & pl.col("agent_type").is_in(shown)
        )
        .sort("day")
        .collect()
    )
    flagged = {
        (row["agent_type"], row["metric"]): row["severity"]
        for row in findings.filter(pl.col("agent_id").is_null()).iter_rows(named=True)
    }
    for name in shown:
        table = Table(
            title=f"{name} on {chosen}: each metric against its baseline", title_justify="left"
        )
        for column in ("metric", "baseline", "current", "change", "14 days", "drift"):
            table.add_column(
                column, justify="left" if column in ("metric", "14 days", "drift") else "right"
            )
        rows = history.filter(pl.col("agent_type") == name)
        for metric in METRICS:
            series = rows.filter(pl.col("metric") == metric)
            today = series.filter(pl.col("day") == chosen)
            if today.is_empty():
                continue
            base, cur = today["baseline_value"][0], today["current_value"][0]
            change = f"{(cur - base) / abs(base) * 100:+.0f} %" if base and cur is not None else ""
            severity = flagged.get((name, metric), "")
            style = _SEVERITY_STYLE.get(severity, "")
            table.add_row(
                metric,
                format_value(metric, base),
                format_value(metric, cur),
                change,
                sparkline(_daily(series, chosen)),
                f"[{style}]{severity}[/]" if severity else "",
            )
        console.print(table)


def _print_findings(findings, chosen: date, format_value) -> None:
    if findings.is_empty():
        console.print(f"No drift on {chosen}: every tested metric is within its baseline.")
        return
    table = Table(title=f"Drift findings on {chosen}", title_justify="left")
    for column in (
        "severity",
        "agent type",
        "agent",
        "metric",
        "baseline",
        "current",
        "change",
        "p",
    ):
        table.add_column(
            column, justify="right" if column in ("baseline", "current", "change", "p") else "left"
        )
    for row in findings.iter_rows(named=True):
        style = _SEVERITY_STYLE[row["severity"]]
        change = "" if row["change_pct"] is None else f"{row['change_pct']:+.0f} %"
        table.add_row(
            f"[{style}]{row['severity']}[/]",
            row["agent_type"],
            row["agent_id"] or "(all)",
            row["metric"],
            format_value(row["metric"], row["baseline_value"]),
            format_value(row["metric"], row["current_value"]),
            change,
            "< 1e-6" if row["p_value"] < 1e-6 else f"{row['p_value']:.1g}",
        )
    console.print(table)


@click.command()
@click.option(
    "--date",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Day to list (default: the latest day in behavior_anomalies).",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
def anomalies(day: datetime | None, limit: int) -> None:
    """The day's most anomalous reasoning cycles, with the reasons in words.

    Reads behavior_anomalies (run `agentops run` first to refresh it).

    \b
    Example:
      agentops anomalies --date 2026-11-20 --limit 10
    """
    import polars as pl

    from agentops_assets.drift.tables import BEHAVIOR_ANOMALIES

    paths = Paths.from_env()
    frame = _scan(paths, BEHAVIOR_ANOMALIES)
    chosen = _day(frame, day, empty_ok=True)
    if chosen is None:
        console.print("No anomalous cycle on any day so far.")
        return
    rows = frame.filter(pl.col("day") == chosen).sort("rank").collect()
    if rows.is_empty():
        console.print(f"No anomalous cycle on {chosen}.")
        return
    shown = min(limit, rows.height)
    title = f"Anomalous cycles on {chosen}: {rows.height} flagged (top {shown})"
    table = Table(title=title, title_justify="left")
    for column in ("rank", "agent", "agent type", "score", "reasons", "trace"):
        justify = "right" if column in ("rank", "score") else "left"
        table.add_column(column, justify=justify, overflow="fold")
    for row in rows.head(limit).iter_rows(named=True):
        table.add_row(
            str(row["rank"]),
            row["agent_id"],
            row["agent_type"],
            f"{row['score']:.2f}",
            row["reasons"],
            row["trace_id"],
        )
    console.print(table)


def sparkline(values: list[float | None]) -> str:
    """``values`` as block characters from low to high; a gap for a day without a value."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    marks = []
    for value in values:
        if value is None:
            marks.append(" ")
        else:
            level = 0 if span == 0 else round((value - low) / span * (len(SPARK) - 1))
            marks.append(SPARK[level])
    return "".join(marks)


def _daily(series, last: date, days: int = 14) -> list[float | None]:
    """The ``current_value`` of each of the ``days`` days up to ``last``; None where absent."""
    values = dict(zip(series["day"].to_list(), series["current_value"].to_list(), strict=True))
    return [values.get(last - timedelta(days=n)) for n in range(days - 1, -1, -1)]


def _scan(paths: Paths, name: str):
    from agentops_assets.storage import lake

    frame = lake.scan(paths.table_uri(name))
    if frame is None:
        raise DriftReportError(
            f"There is no {name} table under {paths.lake_uri}; run `agentops run` "
            "(or `agentops demo`) first."
        )
    return frame


def _day(frame, day: datetime | None, *, empty_ok: bool = False) -> date | None:
    import polars as pl

    days = frame.select(pl.col("day").min().alias("first"), pl.col("day").max().alias("last"))
    first, last = days.collect().row(0)
    if last is None:
        if empty_ok:
            return None
        raise DriftReportError("The drift tables are empty; run `agentops run` first.")
    if day is None:
        return last
    chosen = day.date()
    if not first <= chosen <= last:
        raise DriftReportError(f"No drift data for {chosen}; the tables cover {first} .. {last}.")
    return chosen
