"""``agentops chaos``: drills that inject a fault into a scratch copy of the home."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from agentops_assets.control.chaos import SCENARIOS
from agentops_assets.storage.config import Paths

console = Console()
err = Console(stderr=True)


@click.group()
def chaos() -> None:
    """Chaos drills: inject a fault into a scratch copy of the home, run the pipeline there and
    check that the platform reacts as its policies say. The live tables are never touched;
    each outcome is appended to the table chaos_drills.

    \b
    Example:
      agentops chaos list
      agentops chaos run rogue_agent
    """


@chaos.command(name="list")
def list_scenarios() -> None:
    """The scenarios, what each injects, and the reaction expected.

    \b
    Example:
      agentops chaos list
    """
    table = Table(title="Chaos scenarios", title_justify="left")
    for column in ("scenario", "injects", "expected reaction"):
        table.add_column(column, overflow="fold")
    for scenario in SCENARIOS.values():
        table.add_row(scenario.name, scenario.injects, scenario.expected)
    console.print(table)


@chaos.command()
@click.argument("scenario", type=click.Choice(list(SCENARIOS)))
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Picks among the busiest agent types (and agents) of the replayed day.",
)
def run(scenario: str, seed: int) -> None:
    """Run one drill; exit 1 when the platform did not react as its policies say.

    The last day of telemetry before today is replayed as today for the chosen agents, with
    the fault in it, then ingestion, the day's FinOps, drift, governance and alerts, and the
    autonomy states run on the copy (about a minute on the demo's home).

    \b
    Example:
      agentops chaos run provider_outage --seed 1
    """
    from agentops_assets.control.chaos import DrillError
    from agentops_assets.defs.control.chaos import run_drill

    paths = Paths.from_env()
    try:
        drill = run_drill(
            paths, scenario, seed=seed, report=lambda line: err.print(line, markup=False)
        )
    except DrillError as error:
        raise click.ClickException(str(error)) from None
    row = drill.row
    table = Table(title=f"Drill {scenario} on {row['target']}", title_justify="left")
    table.add_column("")
    table.add_column("", overflow="fold")
    verdict = "[green]reacted as expected[/]" if row["passed"] else "[red]NOT as expected[/]"
    for name, value in (
        ("result", verdict),
        ("expected", SCENARIOS[scenario].expected),
        ("detected by", row["detected_by"]),
        ("state change", row["state_change"]),
        ("alerts", str(row["alerts"])),
        ("ledger entries", str(row["ledger_entries"])),
        ("after injection", f"{row['seconds_to_react']:.0f} s (one pipeline run)"),
        ("detail", row["detail"]),
    ):
        table.add_row(name, value)
    console.print(table)
    console.print('Recorded in chaos_drills: agentops sql "SELECT * FROM chaos_drills"')
    if not row["passed"]:
        sys.exit(1)
