"""``agentops finops``: what each agent type costs, what it is worth, and who breaks budget."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import click

from agentops_assets.storage.config import Paths


@click.group()
def finops() -> None:
    """Cognitive FinOps: spend, ROI and budget status per agent type.

    \b
    Example:
      agentops finops report --period month
    """


@finops.command()
@click.option(
    "--period",
    type=click.Choice(["day", "month"]),
    default="day",
    show_default=True,
    help="A single day, or the month to date.",
)
@click.option(
    "--date",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Day the report is as of (default: the latest day in the tables).",
)
def report(period: Literal["day", "month"], day: datetime | None) -> None:
    """Spend against budget, ROI and the top spenders per agent type, as tables.

    Reads budget_compliance, agent_type_roi and agent_daily_metrics (run `agentops run`
    first to refresh them).

    \b
    Example:
      agentops finops report --period month --date 2026-11-20
    """
    # Imported here: polars and the lake load only when a report is asked for.
    from agentops_assets.cli.finops_report import print_report

    print_report(Paths.from_env(), period=period, day=day.date() if day else None)
