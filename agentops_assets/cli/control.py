"""``agentops control``: see and override the autonomy of agents and agent types."""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from agentops_assets.storage.config import Paths

console = Console()
_STYLE = {
    "normal": "green",
    "throttled": "yellow",
    "sandboxed": "magenta",
    "human_only": "bold yellow",
    "frozen": "bold red",
}
_STATES = ("normal", "throttled", "sandboxed", "human_only", "frozen")


@click.group()
def control() -> None:
    """Autonomy states: what each agent and agent type may do on its own, and why.

    \b
    Example:
      agentops control status
      agentops control set support-agent-05 frozen --reason "investigating IAM calls"
      agentops control release support-agent-05 --reason "keys rotated, tools fixed"
    """


@control.command()
@click.argument("subject", required=False, metavar="[AGENT|TYPE]")
@click.option("--all", "show_all", is_flag=True, help="Also list agents in the normal state.")
def status(subject: str | None, show_all: bool) -> None:
    """Each type's and agent's state, with the reason, since when and until when.

    Reads the last evaluation (`agentops run`, or the Dagster sensor and schedule); without
    --all, agents in the normal state are counted, not listed.

    \b
    Example:
      agentops control status SupportAgent
    """
    import polars as pl

    from agentops_assets.control.output import control_path

    paths = Paths.from_env()
    states = _states(paths)
    day = states["day"][0] if states.height else None
    agents = states.filter(pl.col("agent_id").is_not_null())
    if subject is not None:
        agent_type, agent_id = _resolve(states, subject)
        # A type: the type and its agents; an agent: the agent and its type.
        of_type = pl.col("agent_type") == agent_type
        mine = (
            of_type
            if agent_id is None
            else of_type & (pl.col("agent_id").is_null() | (pl.col("agent_id") == agent_id))
        )
        states = states.filter(mine)
    shown = states if show_all or subject else states.filter(pl.col("state") != "normal")
    counts = dict(agents.group_by("state").len().iter_rows())
    console.print(
        f"Autonomy on {day}: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in _STATES if counts.get(s, 0))
        + f" (of {agents.height} agents); runtimes read {control_path(paths)}",
        soft_wrap=True,
        highlight=False,
    )
    if shown.is_empty():
        console.print("Every agent runs normally.")
        return
    table = Table(title_justify="left")
    for column in ("agent", "state", "since", "until", "why"):
        table.add_column(column, overflow="fold", no_wrap=column in ("state", "since", "until"))
    for row in shown.sort("agent_type", "agent_id", nulls_last=False).iter_rows(named=True):
        who = row["agent_id"] or f"{row['agent_type']} (type)"
        table.add_row(
            who,
            f"[{_STYLE[row['state']]}]{row['state']}[/]",
            str(row["since"] or "-"),
            str(row["until"] or ("until released" if row["state"] != "normal" else "-")),
            row["reason"] or "-",
        )
    console.print(table)


@control.command(name="set")
@click.argument("subject", metavar="AGENT|TYPE")
@click.argument("state", type=click.Choice(_STATES))
@click.option("--reason", required=True, help="Why, in a sentence.")
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
    help="When the override ends (UTC); default: until released.",
)
@click.option("--by", "supervisor", help="Who (default: $AGENTOPS_REVIEWER, else the login).")
def set_command(
    subject: str, state: str, reason: str, until: datetime | None, supervisor: str | None
) -> None:
    """Put an agent or a whole type into a state above the rules, until a time or until
    released; recorded in the audit ledger with who and why.

    \b
    Example:
      agentops control set FinanceAgent human_only --reason "quarter close" --until 2026-12-05
    """
    from agentops_assets.control.overrides import ControlError, set_state

    paths = Paths.from_env()
    agent_type, agent_id = _resolve(_states(paths), subject)
    try:
        set_state(
            paths, agent_type, agent_id, state, reason=reason, by=_who(supervisor),
            until=until.replace(tzinfo=UTC) if until else None,
        )  # fmt: skip
    except ControlError as error:
        raise click.ClickException(str(error)) from None
    _publish(paths, subject)


@control.command()
@click.argument("subject", metavar="AGENT|TYPE")
@click.option("--reason", required=True, help="Why, in a sentence.")
@click.option("--by", "supervisor", help="Who (default: $AGENTOPS_REVIEWER, else the login).")
def release(subject: str, reason: str, supervisor: str | None) -> None:
    """Lift an override and the rules' state: the evidence so far is acknowledged, only newer
    evidence restricts the agent again. Recorded in the audit ledger.

    \b
    Example:
      agentops control release support-agent-05 --reason "tool registry fixed"
    """
    from agentops_assets.control.overrides import ControlError
    from agentops_assets.control.overrides import release as release_subject

    paths = Paths.from_env()
    agent_type, agent_id = _resolve(_states(paths), subject)
    try:
        release_subject(paths, agent_type, agent_id, reason=reason, by=_who(supervisor))
    except ControlError as error:
        raise click.ClickException(str(error)) from None
    _publish(paths, subject)


def _states(paths: Paths):
    from agentops_assets.control.tables import AUTONOMY_STATE
    from agentops_assets.storage import lake

    frame = lake.scan(paths.table_uri(AUTONOMY_STATE))
    if frame is None:
        raise click.ClickException(
            "no autonomy states yet: run `agentops run` (or `agentops demo`) first."
        )
    return frame.collect()


def _resolve(states, subject: str) -> tuple[str, str | None]:
    """(agent_type, agent_id) of an agent id, or (type, None) of an agent type."""
    agents = states.filter(states["agent_id"] == subject)
    if agents.height:
        return str(agents["agent_type"][0]), subject
    if subject in set(states["agent_type"].to_list()):
        return subject, None
    raise click.BadParameter(
        f"{subject!r} is neither an agent nor an agent type of the last evaluation; "
        "`agentops control status --all` lists them.",
        param_hint="AGENT|TYPE",
    )


def _who(given: str | None) -> str:
    return given or os.environ.get("AGENTOPS_REVIEWER") or getpass.getuser()


def _publish(paths: Paths, subject: str) -> None:
    """Evaluate today again so the tables, the ledger and the control file say it now."""
    from agentops_assets.control.refresh import refresh_autonomy

    update = refresh_autonomy(paths)
    for row in update.changes.iter_rows(named=True):
        who = row["agent_id"] or f"{row['agent_type']} (type)"
        console.print(
            f"{who}: {row['from_state']} -> [{_STYLE[row['to_state']]}]{row['to_state']}[/] "
            f"({row['reason']})",
            highlight=False,
        )
    if update.changes.is_empty():
        console.print(f"{subject}: no change of state.")
    console.print(f"Recorded in the audit ledger; runtimes read {update.control_file}")
