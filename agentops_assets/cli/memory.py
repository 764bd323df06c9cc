"""``agentops memory``: read, diff, roll back and search the agents' versioned memory."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentops_assets.storage.config import Paths
from agentops_assets.storage.memory_stores import (
    index_exists,
    memory_index,
    memory_store,
    refresh_index,
)
from memory import Commit, FactChange, MemoryStore, MemoryStoreError, UnknownAgentError

console = Console()
err = Console(stderr=True)


def _store() -> MemoryStore:
    return memory_store(Paths.from_env())


def _to_ledger() -> None:
    """Append the memory commits the audit ledger lacks (this one included)."""
    from agentops_assets.governance import audit

    paths = Paths.from_env()
    audit.record_memory(audit.ledger(paths), paths)


class _MemoryGroup(click.Group):
    """Turns the memory library's errors into one clear sentence, without a trace."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MemoryStoreError as error:
            raise click.ClickException(str(error)) from None
        except ValueError as error:
            raise click.UsageError(str(error), ctx) from None


@click.group(cls=_MemoryGroup)
def memory() -> None:
    """Agents' memory, versioned like code: log, show, diff, revert, rollback, commit, search.

    \b
    Example:
      agentops memory log finance-agent-03
      agentops memory diff finance-agent-03 40 52
      agentops memory revert finance-agent-03 41 --reason "wrong refund lesson"
    """


@memory.command()
@click.argument("agent", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
def log(agent: str | None, limit: int) -> None:
    """Memory commits, newest first: who changed which agent's memory, why, approved by whom.

    \b
    Example:
      agentops memory log finance-agent-03 --limit 10
    """
    commits = _store().log(agent, limit=limit)
    if not commits:
        console.print("No memory commits yet.")
        return
    table = Table(
        title=f"Memory log{' of ' + agent if agent else ''}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    table.add_column("v", justify="right", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    if agent is None:
        table.add_column("agent", overflow="fold")
    table.add_column("+/~/-", no_wrap=True)
    table.add_column("message, by", overflow="fold", min_width=24, ratio=1)
    for c in commits:
        cells = [Text(str(c.version)), Text(c.timestamp.strftime("%m-%d %H:%M"))]
        cells += [Text(c.agent_id)] if agent is None else []
        cells += [Text(f"{c.added}/{c.updated}/{c.deleted}"), _log_message(c)]
        table.add_row(*cells)
    console.print(table)


def _log_message(commit: Commit) -> Text:
    """The message (marked when the commit is a rollback), then who made and approved it.

    ``Text``, not markup: a ``[...]`` in a message is shown as written.
    """
    text = Text(commit.message)
    if commit.rolled_back_to is not None:
        text = Text(f"(rollback to v{commit.rolled_back_to}) ").append_text(text)
    approved = f", approved by {commit.approved_by}" if commit.approved_by else ""
    return text.append(f"\n  by {commit.author}{approved}", style="dim")


@memory.command()
@click.argument("agent")
@click.option("--as-of", "as_of", type=int, help="A memory version (see `memory log`).")
@click.option(
    "--at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
    help="A UTC event time: the memory as it was then (for commits fed from telemetry, the "
    "time of the reasoning cycle; for others, the commit time).",
)
def show(agent: str, as_of: int | None, at: datetime | None) -> None:
    """An agent's facts now, at a version (--as-of) or at a time (--at).

    \b
    Example:
      agentops memory show finance-agent-03 --as-of 40
    """
    if as_of is not None and at is not None:
        raise click.UsageError("Give --as-of or --at, not both.")
    store = _store()
    if at is not None:
        as_of = store.version_at(agent, at.replace(tzinfo=UTC))
    facts = store.as_of(agent, version=as_of)
    when = (
        f"{at:%Y-%m-%d %H:%M:%S} UTC, v{as_of}"
        if at
        else (f"v{as_of}" if as_of is not None else "now")
    )
    table = Table(title=f"Memory of {agent} ({when}): {len(facts)} facts")
    for column in ("fact", "namespace", "content", "confidence", "updated (UTC)"):
        table.add_column(column)
    for f in facts:
        table.add_row(
            f.fact_id,
            f.namespace,
            f.content,
            "" if f.confidence is None else f"{f.confidence:.2f}",
            f.updated_at.strftime("%Y-%m-%d %H:%M") if f.updated_at else "",
        )
    console.print(table)


def _print_diff(diff) -> None:
    colours = {"+": "green", "-": "red", "~": "yellow"}
    lines = diff.render(width=120).splitlines()
    console.print(Text(lines[0], style="bold"))
    for line in lines[1:]:
        console.print(Text(line, style=colours.get(line[:1], "")))


@memory.command()
@click.argument("agent")
@click.argument("from_version", type=int)
@click.argument("to_version", type=int, required=False)
def diff(agent: str, from_version: int, to_version: int | None) -> None:
    """Facts added (+), removed (-) and changed (~) between two versions (default: now).

    \b
    Example:
      agentops memory diff finance-agent-03 40 52
    """
    _print_diff(_store().diff(agent, from_version, to_version))


@memory.command()
@click.argument("agent")
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why, as the log will show it.")
@click.option("--author", default=getpass.getuser, show_default="you", help="Who rolls back.")
@click.option("--approved-by", help="Who approved the rollback.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def rollback(
    agent: str, version: int, reason: str, author: str, approved_by: str | None, yes: bool
) -> None:
    """Bring one agent's facts back to a version, as a new commit (other agents untouched).

    The rollback is itself a commit: roll it back to undo it.

    \b
    Example:
      agentops memory rollback finance-agent-03 40 --reason "wrong refund lesson" --yes
    """
    store = _store()
    current = store.version()
    change = store.diff(agent, current, version) if current is not None else None
    if change is not None:
        if not change:
            console.print(f"The memory of {agent} is already as it was at v{version}.")
            return
        _print_diff(change)
    if not yes:
        click.confirm(f"Roll the memory of {agent} back to v{version}?", abort=True)
    commit = store.rollback(agent, version, reason=reason, author=author, approved_by=approved_by)
    if commit is None:
        console.print(f"The memory of {agent} is already as it was at v{version}.")
        return
    _to_ledger()
    console.print(
        f"Rolled back {agent} to v{version} as v{commit.version}: "
        f"{commit.added} added, {commit.updated} changed, {commit.deleted} removed. "
        f"Undo with: agentops memory rollback {agent} {current} --reason ..."
    )


@memory.command()
@click.argument("agent")
@click.argument("version", type=int)
@click.option("--reason", help="Why, added to the message `Revert vN: <original message>`.")
@click.option("--author", default=getpass.getuser, show_default="you", help="Who reverts.")
@click.option("--approved-by", help="Who approved the revert.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def revert(
    agent: str,
    version: int,
    reason: str | None,
    author: str,
    approved_by: str | None,
    yes: bool,
) -> None:
    """Undo exactly what one commit did to an agent's memory, as a new commit.

    Later commits are kept. Refused when a later commit changed the same fact.

    \b
    Example:
      agentops memory revert finance-agent-03 41 --reason "wrong refund lesson" --yes
    """
    store = _store()
    made = store.diff(agent, version - 1, version) if version > 0 else None
    if made:  # else not a commit of this agent: revert says so
        console.print(f"v{version} made these changes; the revert undoes them:")
        _print_diff(made)
        if not yes:
            click.confirm(f"Revert v{version} of {agent}?", abort=True)
    commit = store.revert(agent, version, author=author, reason=reason, approved_by=approved_by)
    _to_ledger()
    console.print(
        f"Reverted v{version} of {agent} as v{commit.version}: {commit.added} restored, "
        f"{commit.updated} changed back, {commit.deleted} removed. "
        f"Undo with: agentops memory revert {agent} {commit.version}"
    )


@memory.command(name="commit")
@click.argument("agent")
@click.option("--fact", "fact_id", required=True, help="The fact's id, e.g. finance.fx_source.")
@click.option("--content", help="The statement to remember (omit with --delete).")
@click.option("--namespace", default="default", show_default=True)
@click.option("--delete", is_flag=True, help="Remove the fact instead.")
@click.option("--message", "-m", required=True, help="Why the memory changes.")
@click.option("--author", default=getpass.getuser, show_default="you")
@click.option("--approved-by", help="Who approved the change.")
def commit_fact(
    agent: str,
    fact_id: str,
    content: str | None,
    namespace: str,
    delete: bool,
    message: str,
    author: str,
    approved_by: str | None,
) -> None:
    """Add, change or remove one fact of an agent, as one commit.

    \b
    Example:
      agentops memory commit finance-agent-03 --fact finance.refund_approval_threshold \\
        --content "Refunds over $10,000 need the controller." -m "Policy R-1"
    """
    if delete == (content is not None):
        raise click.UsageError("Give --content to add or change a fact, or --delete.")
    change = (
        FactChange.delete(fact_id)
        if delete
        else FactChange.put(fact_id, content, namespace=namespace, source="agentops memory commit")
    )
    result = _store().commit(
        agent, [change], message=message, author=author, approved_by=approved_by
    )
    if result is None:
        console.print("Nothing changed: the agent already holds that fact as given.")
    else:
        _to_ledger()
        # The message as stored: secrets in it were redacted, so none is echoed either.
        console.print(f"Committed v{result.version} for {agent}: {result.message}")


@memory.command()
@click.argument("query")
@click.option("--agent", help="Only this agent's facts (and shared knowledge).")
@click.option("--namespace", help="Only this namespace.")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--mode",
    default="hybrid",
    show_default=True,
    type=click.Choice(["hybrid", "vector", "text"]),
    help="Vector similarity, full-text (BM25), or both fused by rank.",
)
@click.option("--as-of-version", type=int, help="Search the index as of this memory version.")
def search(
    query: str,
    agent: str | None,
    namespace: str | None,
    k: int,
    mode: str,
    as_of_version: int | None,
) -> None:
    """Search the agents' facts and the knowledge documents.

    \b
    Example:
      agentops memory search "refund approval" --agent finance-agent-03 --k 5
      agentops memory search "refund approval" --agent finance-agent-03 --as-of-version 40
    """
    paths = Paths.from_env()
    if not index_exists(paths):
        raise click.ClickException("There is no retrieval index yet; run `agentops run` first.")
    store = _store()
    if agent is not None:
        _require_agent(store, agent)
    index = memory_index(paths)
    if as_of_version is None:
        _catch_up(index, store, paths)
    hits = index.search(
        query, agent_id=agent, namespace=namespace, k=k, mode=mode, as_of_version=as_of_version
    )
    if not hits:
        console.print(f'No fact or document matches "{query}" ({mode} search).')
        return
    versions = [h.memory_version for h in hits if h.memory_version is not None]
    version = versions[0] if versions else as_of_version
    at = "latest memory" if version is None else f"memory v{version}"
    table = Table(title=f'"{query}": {len(hits)} hits ({at}, {mode})')
    for column in ("#", "kind", "id", "agent", "namespace", "score", "content"):
        table.add_column(column, justify="right" if column in ("#", "score") else "left")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(
            str(rank),
            hit.kind,
            hit.id,
            hit.agent_id or "shared",
            hit.namespace,
            f"{hit.score:.3f}",
            hit.content,
        )
    console.print(table)


def _catch_up(index, store: MemoryStore, paths: Paths) -> None:
    """Refresh the index when it is behind the memory, so a search never answers from the past.

    A commit, rollback or revert through the CLI changes the memory at once; the index follows
    when Dagster's sensor runs, which needs the daemon. The refresh is incremental and takes the
    index's writer lock, so it is safe beside a Dagster run.
    """
    latest, indexed = store.version(), index.memory_version()
    if latest is None or indexed == latest:
        return
    behind = "never refreshed" if indexed is None else f"at memory v{indexed}"
    err.print(f"The index was {behind}, the memory is at v{latest}: refreshing it first.")
    done = refresh_index(index, paths)
    err.print(
        f"Refreshed to memory v{done.memory_version} ({done.mode}: {done.upserted} embedded, "
        f"{done.deleted} removed)."
    )


def _require_agent(store: MemoryStore, agent: str) -> None:
    """One sentence, not shared documents alone, when ``agent`` has no memory."""
    try:
        store.log(agent, limit=1)
    except UnknownAgentError:
        known = len(store.agents())
        have = "1 agent has one" if known == 1 else f"{known} agents have one"
        raise click.ClickException(
            f"agent {agent!r} has no memory in this store ({have}; see `agentops memory log`)."
        ) from None
