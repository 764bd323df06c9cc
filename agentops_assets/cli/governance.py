"""``agentops policy``, ``agentops review`` and ``agentops audit``: governance from the shell."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentops_assets.storage.config import Paths

console = Console()
err = Console(stderr=True)
_ZONE_STYLE = {"green": "green", "yellow": "yellow", "red": "bold red"}
_WIDE = 140  # columns from which the review queue is a table


def _paths() -> Paths:
    return Paths.from_env()


# --- agentops policy ---------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Policies as code: judge one action, or replay history under candidate policies.

    \b
    Example:
      echo '{"agent_type": "SupportAgent", "kind": "tool_call", "action": "iam.create_key"}' \\
        | agentops policy decide --input -
      agentops policy backtest --policies ./candidate-policies
    """


@policy.command()
@click.option(
    "--input",
    "source",
    required=True,
    type=click.File("r"),
    help="A file with one JSON action document, or - for standard input.",
)
@click.option(
    "--policies",
    "folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Judge with this policy folder instead of the policies in force.",
)
def decide(source, folder: Path | None) -> None:
    """Judge one action document; prints the decision as JSON.

    The document holds agent_id, agent_type, kind, action and what else the policies read
    (target, amount_usd, data_zone...). Its context (the type's capabilities, today's budget
    status and open drift findings) and the action's 30-day statistics are added from the
    lake; a context given in the document wins. Any failure to judge is a deny with the reason.

    \b
    Example:
      agentops policy decide --input action.json
    """
    from agentops_assets.governance.judge import decide_one, load_policies

    text = source.read()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(
            f"not JSON ({error.msg} at line {error.lineno}, column {error.colno}); expected "
            'one JSON object such as {"agent_type": "SupportAgent", "kind": "tool_call", '
            '"action": "kb.search"}.',
            param_hint="--input",
        ) from None
    paths = _paths()
    decision, full = decide_one(paths, load_policies(paths, folder), document)
    click.echo(json.dumps({**decision.to_dict(), "input": full}, indent=2, default=str))


@policy.command()
@click.option(
    "--policies",
    "folder",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The candidate policy folder (*.rego, and optionally its own capabilities.yaml).",
)
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="First day (default: "
              "the first day of agent_events).")  # fmt: skip
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last day (default: the "
              "last day of agent_events).")  # fmt: skip
@click.option(
    "--format",
    "fmt",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json"]),
)
def backtest(folder: Path, first: datetime | None, last: datetime | None, fmt: str) -> None:
    """Replay the history in agent_events under candidate policies; writes nothing.

    Reports how many actions would get another decision or zone than under the policies in
    force: by transition, by agent type, with examples. JSON output has `evaluated` and
    `changed` among its keys.

    \b
    Example:
      agentops policy backtest --policies ./stricter --from 2026-11-01 --format json
    """
    from agentops_assets.finops.refresh import event_date_range
    from agentops_assets.governance.backtest import backtest as run_backtest

    paths = _paths()
    bounds = event_date_range(paths)
    if bounds is None:
        raise click.ClickException(
            "there is no telemetry to replay: run `agentops simulate` and `agentops run` first."
        )
    start = first.date() if first else bounds[0]
    end = last.date() if last else bounds[1]
    if end < start:
        raise click.BadParameter(f"--to {end} is before --from {start}.", param_hint="--to")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        tasks: dict[str, Any] = {}

        def tell(which: str, done: int, total: int) -> None:
            if which not in tasks:
                tasks[which] = progress.add_task(f"judging with the {which} policies", total=total)
            progress.update(tasks[which], completed=done)

        report = run_backtest(paths, folder, start, end, progress=tell)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    _print_backtest(report)


def _print_backtest(report) -> None:
    share = report.changed / report.evaluated if report.evaluated else 0.0
    console.print(
        f"Replayed {report.evaluated:,} actions of {report.first}..{report.last} "
        f"({report.evaluations['current']:,} + {report.evaluations['candidate']:,} distinct "
        f"evaluations, {report.seconds:.1f} s): [bold]{report.changed:,}[/] would change "
        f"({share:.1%}).",
        soft_wrap=True,
    )
    console.print(
        f"  current   {report.current_revision[:12]}  {_zones(report.zones['current'])}\n"
        f"  candidate {report.candidate_revision[:12]}  {_zones(report.zones['candidate'])}"
    )
    if report.candidate_error:
        console.print(f"[red]The candidate denies everything:[/] {report.candidate_error}")
    if not report.changed:
        return
    table = Table(title="Changes (current -> candidate)", title_justify="left")
    for column in ("from", "to", "actions"):
        table.add_column(column, justify="right" if column == "actions" else "left")
    for row in report.transitions.iter_rows(named=True):
        table.add_row(_verdict(row, "old"), _verdict(row, "new"), f"{row['count']:,}")
    console.print(table)
    by_type = Table(title="By agent type", title_justify="left")
    for column in ("agent type", "from", "to", "actions"):
        by_type.add_column(column, justify="right" if column == "actions" else "left")
    for row in report.by_agent_type.iter_rows(named=True):
        by_type.add_row(
            row["agent_type"], _verdict(row, "old"), _verdict(row, "new"), f"{row['count']:,}"
        )
    console.print(by_type)
    console.print("[italic]Examples[/]")
    for row in report.examples.iter_rows(named=True):
        # One line each (wrapped by the terminal): a table of six columns is unreadable at 80.
        console.print(
            f"  {row['day']} {row['event_id']} {row['agent_id']} {row['action'] or '-'} -> "
            f"{_verdict(row, 'new')}: {row['new_reasons']}",
            highlight=False,
        )


def _verdict(row: dict[str, Any], which: str) -> str:
    zone = row[f"{which}_zone"]
    return f"[{_ZONE_STYLE[zone]}]{row[f'{which}_decision']}/{zone}[/]"


def _zones(counts: dict[str, int]) -> str:
    return "  ".join(f"{zone} {count:,}" for zone, count in counts.items())


# --- agentops review ---------------------------------------------------------------------------


@click.group()
def review() -> None:
    """The review queue: red-zone actions and sampled yellow ones wait here for a human.

    \b
    Example:
      agentops review list
      agentops review approve rv-1a2b3c4d5e6f7a8b --rationale "Refund within policy"
    """


@review.command(name="list")
@click.option(
    "--state",
    default="pending",
    show_default=True,
    type=click.Choice(["pending", "approved", "rejected", "all"]),
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
def list_reviews(state: str, limit: int) -> None:
    """Items of the review queue: red ones first, then the newest.

    \b
    Example:
      agentops review list --state all --limit 50
    """
    import polars as pl

    from agentops_assets.governance.review import reviews

    items = reviews(_paths(), None if state == "all" else state)
    if items.is_empty():
        console.print(
            f"No {'' if state == 'all' else state + ' '}review items."
            + (
                " `agentops run` judges new telemetry and queues what needs a human."
                if state in ("pending", "all")
                else ""
            )  # fmt: skip
        )
        return
    # Red first (a human must approve before), then the newest.
    shown = items.sort(pl.col("zone") == "red", "created_at", "review_id", descending=True).head(
        limit
    )
    title = f"{items.height:,} {state} review item(s)"
    rows = []
    for row in shown.iter_rows(named=True):
        approvals = f"{len(row['approved_by'] or [])}/{row['approvals_required']}"
        status = row["state"] if row["state"] != "pending" else f"pending {approvals}"
        if row["decided_by"]:
            status += f" by {row['decided_by']}"
        verdict = f"[{_ZONE_STYLE[row['zone']]}]{row['decision']}/{row['zone']}[/]"
        why = " ".join(row["reasons"] or [])
        rows.append((row, verdict, why, status))
    if console.width < _WIDE:
        # One block per item: seven columns fold every word at 80 columns.
        console.print(f"[bold]{title}[/]")
        for row, verdict, why, status in rows:
            console.print(
                f"{row['review_id']}  {row['day']}  {verdict}  {status}\n"
                f"  {row['agent_id']} {row['action'] or '-'}: {why}",
                highlight=False,
            )
    else:
        table = Table(title=title, title_justify="left")
        for column in ("review", "day", "zone", "agent", "action", "why", "state"):
            table.add_column(column, overflow="fold", no_wrap=column == "review")
        for row, verdict, why, status in rows:
            table.add_row(
                row["review_id"], str(row["day"]), verdict, row["agent_id"],
                row["action"] or "-", why, status,
            )  # fmt: skip
        console.print(table)
    if items.height > limit:
        console.print(f"  ({items.height - limit:,} more; --limit {items.height} shows all)")


def _reviewer(given: str | None) -> str:
    return given or os.environ.get("AGENTOPS_REVIEWER") or getpass.getuser()


_BY = click.option(
    "--by",
    "reviewer",
    help="Who decides (default: $AGENTOPS_REVIEWER, else the login name).",
)
_RATIONALE = click.option("--rationale", required=True, help="Why, in a sentence.")


@review.command()
@click.argument("review_id")
@_RATIONALE
@click.option("--correction", help="What the agent should have done (the feedback tuple).")
@click.option(
    "--lesson",
    "lesson_key",
    help="Remember the correction as this fact of the agent's memory (needs --correction).",
)
@_BY
def approve(
    review_id: str,
    rationale: str,
    correction: str | None,
    lesson_key: str | None,
    reviewer: str | None,
) -> None:
    """Approve a review item, optionally with a correction to remember as a lesson.

    The approval goes to the audit ledger; a lesson becomes a memory commit of the agent,
    approved by you.

    \b
    Example:
      agentops review approve rv-1a2b3c4d5e6f7a8b --rationale "Within policy" \\
        --correction "Refunds above 500 USD need a manager" --lesson refund_limit
    """
    _decide(review_id, "approve", reviewer, rationale, correction, lesson_key)


@review.command()
@click.argument("review_id")
@_RATIONALE
@_BY
def reject(review_id: str, rationale: str, reviewer: str | None) -> None:
    """Reject a review item; the rejection goes to the audit ledger.

    \b
    Example:
      agentops review reject rv-1a2b3c4d5e6f7a8b --rationale "Tool outside its role"
    """
    _decide(review_id, "reject", reviewer, rationale, None, None)


def _decide(
    item_id: str,
    verdict: str,
    reviewer: str | None,
    rationale: str,
    correction: str | None,
    lesson_key: str | None,
) -> None:
    from agentops_assets.governance.review import ReviewError, decide
    from memory.errors import MemoryStoreError

    paths = _paths()
    try:
        outcome = decide(
            paths,
            item_id,
            verdict,  # type: ignore[arg-type]
            reviewer=_reviewer(reviewer),
            rationale=rationale,
            correction=correction,
            lesson_key=lesson_key,
        )
    except ReviewError as error:
        raise click.ClickException(str(error)) from None
    except (MemoryStoreError, ValueError) as error:
        raise click.ClickException(f"the lesson was not stored: {error}") from None
    item = outcome.review
    approvals = f"{len(item['approved_by'] or [])}/{item['approvals_required']}"
    said = {
        "approved": f"Approved {item_id} ({approvals} approvals) by {item['decided_by']}.",
        "rejected": f"Rejected {item_id} by {item['decided_by']}.",
        "pending": f"Approval recorded for {item_id}: {approvals}, it waits for more.",
    }[item["state"]]
    console.print(said + " Recorded in the audit ledger.")
    if outcome.memory_version is not None:
        console.print(
            f"Lesson {item['lesson_key']} committed to {item['agent_id']}'s memory as "
            f"v{outcome.memory_version} (agentops memory log {item['agent_id']})."
        )
    console.print(f"  agentops audit trace {item_id}")


# --- agentops audit ----------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The tamper-evident audit ledger: verify it, or trace one decision end to end.

    \b
    Example:
      agentops audit verify
      agentops audit trace 2a65ad29e3d1e4f18216872565a08809
    """


@audit.command()
def verify() -> None:
    """Check every entry's hash and link and every published head; exit 1 at the first
    entry that fails (edited, deleted, inserted, reordered, or a cut tail).

    \b
    Example:
      agentops audit verify
    """
    from agentops_assets.governance.audit import ledger

    report = ledger(_paths()).verify()
    if report.ok:
        if report.head is None:
            console.print("The audit ledger is empty: nothing recorded yet.")
            return
        console.print(
            f"[green]The audit ledger holds[/]: {report.checked:,} entries chained, "
            f"{report.anchors:,} published heads match; head {report.head.seq} "
            f"{report.head.hash}"
        )
        return
    assert report.failure is not None
    err.print(
        f"[red]The audit ledger fails at entry {report.failure.seq}[/] "
        f"({report.failure.kind}): {report.failure.detail} "
        f"{report.checked:,} entries before it hold.",
        soft_wrap=True,
    )
    sys.exit(1)


@audit.command(name="trace")
@click.argument("ident", metavar="ID")
def trace_command(ident: str) -> None:
    """What happened in one reasoning cycle and what followed: its steps, the policy
    decisions with reasons and revision, reviews and approvals, ledger entries, and memory
    commits and rollbacks. ID is an event id, a trace id or a review id.

    \b
    Example:
      agentops audit trace rv-1a2b3c4d5e6f7a8b
    """
    from agentops_assets.governance.trace import TraceNotFoundError, trace

    try:
        found = trace(_paths(), ident)
    except TraceNotFoundError as error:
        raise click.ClickException(str(error)) from None
    print_trace(found)


def print_trace(found) -> None:
    """The sections of ``agentops audit trace``."""
    steps = found.steps
    agent = steps["agent_id"][0] if steps.height else "-"
    console.print(f"[bold]Trace {found.trace_id}[/] ({agent}, {steps.height} steps)")
    _section("Steps", ("time", "event", "kind", "action", "result"), [
        (f"{row['ts']:%Y-%m-%d %H:%M:%S}", row["event_id"], row["kind"], row["action"] or "-",
         _step_result(row))
        for row in steps.iter_rows(named=True)
    ])  # fmt: skip
    if not found.decisions.height:
        console.print("No policy decisions on this trace yet (`agentops run` judges it).")
    # A green action's one reason is that no rule fired: said once, in the title.
    _section("Policy decisions (green: no rule fired)",
             ("event", "action", "verdict", "reasons", "revision"), [
        (row["event_id"], row["action"] or "-",
         f"[{_ZONE_STYLE[row['zone']]}]{row['decision']}/{row['zone']}[/]",
         " ".join(row["reasons"]) if row["zone"] != "green" else "", row["revision"][:12])
        for row in found.decisions.iter_rows(named=True)
    ])  # fmt: skip
    _section("Reviews", ("review", "event", "state", "by", "rationale", "correction"), [
        (row["review_id"], row["event_id"], row["state"],
         ", ".join(row["approved_by"] or []) or (row["decided_by"] or "-"),
         row["rationale"] or "-", row["correction"] or "-")
        for row in found.reviews.iter_rows(named=True)
    ])  # fmt: skip
    _section("Audit ledger", ("seq", "at", "kind", "actor", "subject", "hash"), [
        (str(row["seq"]), f"{row['at']:%Y-%m-%d %H:%M:%S}", row["kind"], row["actor"],
         row["subject"], row["hash"][:12])
        for row in found.ledger.iter_rows(named=True)
    ])  # fmt: skip
    _section("Memory commits that followed", ("version", "agent", "kind", "message",
                                              "approved by"), [
        (f"v{row['version']}", row["agent_id"], row["kind"], row["message"],
         row["approved_by"] or "-")
        for row in found.memory.iter_rows(named=True)
    ])  # fmt: skip


def _step_result(row: dict[str, Any]) -> str:
    if row["feedback_kind"]:
        return f"{row['feedback_kind']} by {row['reviewer']}: {row['feedback_rationale']}"
    return (row["status"] or "") + (f", {row['outcome']}" if row["outcome"] else "")


def _section(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A titled table of ``rows``; nothing when there are none."""
    if not rows:
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
