"""Memory operations and human lessons found in ``agent_events``, as memory commits.

Each reasoning cycle's memory writes (``kind = memory_op``, actions add / update / put /
delete) become one commit of that agent's memory; a reviewer's correction marked as a lesson
(``human_review`` with ``feedback_kind = correct`` and ``lesson`` in its attributes) becomes a
commit of its own, approved by the reviewer.

What became of each cycle (applied, unchanged, skipped, rejected, and why) is recorded per
cycle and agent in the ``memory_feed_cycles`` ledger, which is never cleaned up: a cycle is
applied once, however often the feed runs and however old the memory's log, so a rollback is
never undone by a rerun. No time watermark: a cycle that lands late is applied, except for
the facts a newer cycle of the same agent already wrote (skipped, with the reason recorded).
Invalid records (an agent id or fact key the memory refuses) are rejected with a reason
instead of stopping the feed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

import polars as pl

from agentops_assets.memory_feed.ledger import (
    FEED_CYCLES,
    CycleLedger,
    CycleOutcome,
    CycleStatus,
)
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS
from memory import Commit, FactChange, MemoryStore
from memory.model import MAX_MESSAGE_BYTES, MAX_NAME_CHARS, check_agent_id, check_text

__all__ = [
    "FEED_AUTHOR",
    "FEED_CYCLES",
    "CycleCommit",
    "CycleLedger",
    "CycleOutcome",
    "FeedReport",
    "apply_cycle_commits",
    "cycle_commits",
    "read_memory_events",
    "split_cycles",
]

FEED_AUTHOR: Final = "agentops.memory_feed"
LESSON_PREFIX: Final = "review:"
_WRITES: Final = ("add", "update", "put", "delete")
_ALL: Final = 1 << 62  # log() limit meaning "the whole history"
_MAX_REASON_CHARS: Final = 2000  # a ledger reason names what was refused, not all of it
_FLUSH_EVERY: Final = 500  # outcomes per ledger commit; a crash loses none (see _recover)


@dataclass(frozen=True)
class CycleCommit:
    """The memory commit one reasoning cycle (or one lesson) asks for.

    ``rejected`` says why writes of the cycle were refused at the edge (an invalid fact key,
    empty content, ...); with no ``changes`` left, the whole cycle is rejected.
    """

    key: str  # the cycle's trace id, or "review:<event id>" for a lesson
    agent_id: str
    at: datetime
    changes: tuple[FactChange, ...]
    message: str
    approved_by: str | None = None
    rejected: tuple[str, ...] = ()


@dataclass
class FeedReport:
    """What one run of the feed did; every cycle not applied is in ``problems`` with why."""

    commits: int = 0
    unchanged: int = 0  # cycles whose writes left the memory as it was
    skipped: int = 0  # cycles each of whose writes a newer cycle of the agent already made
    rejected: int = 0  # cycles refused at the edge: invalid agent id, fact keys, content
    late: int = 0  # cycles older than a cycle of the same agent recorded before them
    recovered: int = 0  # cycles a crashed run applied, recorded now from the memory log
    continued: int = 0  # cycles recorded before whose later-landing writes were applied now
    already_applied: int = 0  # cycles the ledger records as applied by an earlier run
    superseded: int = 0  # cycles the ledger records as not applied: left alone, never replayed
    skipped_changes: int = 0  # writes refused, superseded, or deletes of facts not held
    lessons: int = 0
    latest_version: int | None = None
    problems: list[str] = field(default_factory=list)
    outcomes: list[CycleOutcome] = field(default_factory=list)  # recorded by this run


def read_memory_events(paths: Paths) -> pl.DataFrame:
    """Memory writes and lesson reviews from ``agent_events``, with fact key and namespace."""
    table = lake.scan(paths.table_uri(AGENT_EVENTS))
    if table is None:
        return pl.DataFrame()
    attributes = pl.col("attributes")

    def attribute(*keys: str) -> pl.Expr:
        return pl.coalesce(attributes.str.json_path_match(f"$['{key}']") for key in keys)

    return (
        table.filter(
            (pl.col("kind") == "memory_op") & pl.col("action").is_in(_WRITES)
            | (pl.col("kind") == "human_review") & (pl.col("feedback_kind") == "correct")
        )
        .select(
            "event_id",
            "trace_id",
            "ts",
            "agent_id",
            "kind",
            "action",
            "reviewer",
            "feedback_correction",
            "feedback_rationale",
            "confidence",
            fact_id=pl.coalesce(
                attribute("fact_key", "agentops.memory.fact_key"), pl.col("action_target")
            ),
            namespace=attribute("namespace", "agentops.memory.namespace"),
            lesson=attribute("lesson", "agentops.feedback.lesson") == "true",
            # OTLP spans carry GenAI messages; the statement is the first text part.
            content=pl.coalesce(
                pl.col("input_context").str.json_path_match("$[0].parts[0].content"),
                pl.col("input_context"),
            ),
        )
        .sort("ts", "event_id")
        .collect()
    )


def cycle_commits(events: pl.DataFrame) -> list[CycleCommit]:
    """Group memory events into commits: one per agent and cycle, one per lesson, in time order.

    Only cycles with something valid to commit; ``split_cycles`` also returns the others.
    """
    return split_cycles(events)[0]


def split_cycles(events: pl.DataFrame) -> tuple[list[CycleCommit], list[CycleCommit]]:
    """Memory events as cycles to commit (in time order) and cycles refused whole.

    Nothing is dropped unseen: a write the memory would refuse (no fact key, a key with a
    control character, empty content) is listed in its cycle's ``rejected``; a cycle with
    nothing valid left, or whose agent id the memory refuses, is refused whole.
    """
    if events.is_empty():
        return [], []
    cycles: list[CycleCommit] = []
    writes = events.filter(pl.col("kind") == "memory_op")
    for (agent_id, trace_id), cycle in writes.group_by("agent_id", "trace_id"):
        cycles.append(_cycle(str(trace_id), str(agent_id), cycle))
    reviews = events.filter((pl.col("kind") == "human_review") & pl.col("lesson"))
    cycles += [_lesson(row) for row in reviews.iter_rows(named=True)]
    cycles.sort(key=lambda c: (c.at, c.key))
    return [c for c in cycles if c.changes], [c for c in cycles if not c.changes]


def _cycle(key: str, agent_id: str, cycle: pl.DataFrame) -> CycleCommit:
    at = cycle.get_column("ts").min()
    refused = _refuse_cycle(key, agent_id)
    if refused:
        return CycleCommit(key, agent_id, at, (), "", rejected=(refused,))
    rejected = [
        f"a {action} names no fact"
        for action in cycle.filter(pl.col("fact_id").is_null())["action"]
    ]
    changes: list[FactChange] = []
    last_per_fact = cycle.filter(pl.col("fact_id").is_not_null()).unique(
        "fact_id", keep="last", maintain_order=True
    )
    for row in last_per_fact.iter_rows(named=True):
        try:
            changes.append(_change(row))
        except ValueError as error:  # InvalidFactError is a ValueError too
            rejected.append(f"{row['action']} refused: {error}")
    valid = {c.fact_id for c in changes}
    actions = [
        f"{row['action']} {row['fact_id']}"
        for row in cycle.iter_rows(named=True)
        if row["fact_id"] in valid
    ]
    message = _listing(f"cycle {key[:12]}: ", actions, unit="writes")
    return CycleCommit(key, agent_id, at, tuple(changes), message, rejected=tuple(rejected))


def _lesson(row: dict[str, object]) -> CycleCommit:
    key, agent_id, at = f"{LESSON_PREFIX}{row['event_id']}", str(row["agent_id"]), row["ts"]
    reviewer = row["reviewer"] or "reviewer"
    refused = _refuse_cycle(key, agent_id)
    if refused is None:
        try:
            check_text(reviewer, "reviewer", max_chars=MAX_NAME_CHARS)
        except ValueError as error:
            refused = str(error)
    if refused is None and (row["fact_id"] is None or row["feedback_correction"] is None):
        refused = "the lesson names no fact (fact_key) or gives no correction"
    change = None
    if refused is None:
        try:
            change = FactChange.put(
                str(row["fact_id"]),
                str(row["feedback_correction"]),
                namespace=str(row["namespace"] or "default"),
                source=str(row["event_id"]),
                metadata={"reviewer": reviewer, "lesson": True},
            )
        except ValueError as error:
            refused = f"lesson refused: {error}"
    if change is None:
        return CycleCommit(key, agent_id, at, (), "", rejected=(str(refused),))
    why = row["feedback_rationale"] or "no rationale given"
    message = _cut(f"review {reviewer} corrects {row['fact_id']}: {why}", MAX_MESSAGE_BYTES)
    return CycleCommit(key, agent_id, at, (change,), message, approved_by=str(reviewer))


def _refuse_cycle(key: str, agent_id: str) -> str | None:
    """Why the memory would refuse every commit of this cycle, or ``None``."""
    try:
        check_agent_id(agent_id)
        check_text(key, "cycle_id", max_chars=MAX_NAME_CHARS)
    except ValueError as error:
        return str(error)
    return None


def _change(row: dict[str, object]) -> FactChange:
    fact_id = str(row["fact_id"])
    if row["action"] == "delete":
        return FactChange.delete(fact_id)
    return FactChange.put(
        fact_id,
        str(row["content"] or ""),
        namespace=str(row["namespace"] or "default"),
        source=str(row["event_id"]),
    )


def _listing(head: str, items: Sequence[str], *, unit: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """``head`` and as many ``items`` as fit in ``limit`` UTF-8 bytes, then how many more."""
    size, shown = len(head.encode()), []
    for n, item in enumerate(items):
        tail = f", … and {len(items) - n} more {unit}"
        cost = len(item.encode()) + 2
        if size + cost + (len(tail.encode()) if n < len(items) - 1 else 0) > limit:
            return _cut(head + ", ".join(shown) + tail, limit)
        shown.append(item)
        size += cost
    return head + ", ".join(shown)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, an ellipsis marking the cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def apply_cycle_commits(
    store: MemoryStore,
    commits: Iterable[CycleCommit],
    *,
    rejected: Iterable[CycleCommit] = (),
    ledger: CycleLedger | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FeedReport:
    """Commit each cycle the ledger has not recorded, in time order, and record each outcome.

    A cycle is known by its key and agent, never by a time watermark. A late cycle (older
    than one of the same agent recorded before it) is applied, except for the facts a newer
    cycle of that agent already wrote: replaying those would put older state over newer, so
    they are skipped and the reason is recorded. Deletes of facts the agent does not hold are
    skipped too. Outcomes are recorded in batches; a feed commit whose outcome a crash kept
    from the ledger is found in the recent memory log (its ``cycle_id``) and recorded then.

    Args:
        store: The memory to commit to.
        commits: Cycles from ``cycle_commits``, in time order.
        rejected: Cycles refused whole (``split_cycles``): recorded as rejected, with why.
        ledger: The ``memory_feed_cycles`` table (or its URI); by default the one beside the
            memory table.
        progress: Called with (position, total) before each cycle.

    Returns:
        Counts of what happened, and every cycle not applied (or applied in part) with why.
    """
    if not isinstance(ledger, CycleLedger):
        ledger = CycleLedger(ledger or f"{store.uri.rsplit('/', 1)[0]}/{FEED_CYCLES}")
    commits = [*commits, *rejected]
    run = _FeedRun(store, commits, ledger.read(), report=FeedReport())
    pending = _recover(store, run, ledger_exists=ledger.exists())
    run.report.recovered = len(pending)
    try:
        for position, commit in enumerate(commits, start=1):
            if progress:
                progress(position, len(commits))
            outcome = run.apply(commit)
            if outcome is not None:
                pending.append(outcome)
            if len(pending) >= _FLUSH_EVERY:
                ledger.append(pending)
                pending = []
    finally:
        ledger.append(pending)  # what was done is recorded even when a commit failed
    return run.report


class _FeedRun:
    """The state of one feed run: what the ledger holds and what the agents hold."""

    def __init__(
        self,
        store: MemoryStore,
        commits: list[CycleCommit],
        recorded: pl.DataFrame,
        *,
        report: FeedReport,
    ) -> None:
        self.store, self.report = store, report
        self.by_key = {(c.key, c.agent_id): c for c in commits}
        # Per recorded cycle: "applied" if any of its rows is, and every fact it wrote.
        cycles = recorded.group_by("cycle_key", "agent_id").agg(
            pl.when((pl.col("status") == "applied").any())
            .then(pl.lit("applied"))
            .otherwise(pl.col("status").last()),
            pl.col("fact_ids").list.explode(keep_nulls=False, empty_as_null=False).unique(),
        )
        self.status: dict[tuple[str, str], str] = {}
        self.facts_of: dict[tuple[str, str], set[str]] = {}
        for key, agent, status, facts in cycles.iter_rows():
            self.status[(key, agent)], self.facts_of[(key, agent)] = status, set(facts)
        self.versions = recorded["memory_version"]
        # The newest cycle that wrote each fact of each agent, and each agent's newest cycle.
        self.newest: dict[tuple[str, str], tuple[datetime, str]] = {}
        self.agent_newest: dict[str, datetime] = {}
        written = recorded.filter(pl.col("status") != "rejected")
        latest = (
            written.explode("fact_ids")
            .filter(pl.col("fact_ids").is_not_null())
            .sort("cycle_at", "cycle_key")
            .unique(["agent_id", "fact_ids"], keep="last")
        )
        for agent, fact, at, key in latest.select(
            "agent_id", "fact_ids", "cycle_at", "cycle_key"
        ).iter_rows():
            self.newest[(agent, fact)] = (at, key)
        for agent, at in written.group_by("agent_id").agg(pl.col("cycle_at").max()).iter_rows():
            self.agent_newest[agent] = at
        self.agents = set(store.agents())
        self.held: dict[str, set[str]] = {}

    def apply(self, commit: CycleCommit) -> CycleOutcome | None:
        """Apply one cycle unless recorded before; the outcome to record, or ``None``."""
        recorded = self.status.get((commit.key, commit.agent_id))
        if recorded is not None:
            commit = self._later_writes(commit, recorded)
            if not commit.changes:
                return None
        elif not commit.changes:
            return self._record(commit, "rejected", reasons=list(commit.rejected))
        late = commit.at < self.agent_newest.get(commit.agent_id, commit.at)
        self.report.late += late
        facts = self._held(commit.agent_id)
        changes, newer, not_held = [], [], []
        for change in commit.changes:
            newest = self.newest.get((commit.agent_id, change.fact_id))
            if newest is not None and newest > (commit.at, commit.key):  # the order a run applies
                newer.append(f"{change.fact_id} (by {newest[1]})")
            elif change.op == "delete" and change.fact_id not in facts:
                not_held.append(change.fact_id)
            else:
                changes.append(change)
        reasons = list(commit.rejected)
        if newer:
            reasons.append(_listing("newer cycles of this agent wrote ", newer, unit="facts"))
        if not_held:
            reasons.append(_listing("deletes of facts not held: ", not_held, unit="facts"))
        skipped = len(commit.rejected) + len(newer) + len(not_held)
        self.report.skipped_changes += skipped
        result = self._commit(commit, changes, skipped) if changes else None
        if result is not None:
            return self._record(
                commit, "applied", reasons=reasons, made=result, sent=len(changes), skipped=skipped
            )
        status: CycleStatus = "skipped" if newer else "unchanged"
        return self._record(commit, status, reasons=reasons, sent=len(changes), skipped=skipped)

    def _later_writes(self, commit: CycleCommit, recorded: str) -> CycleCommit:
        """The writes of a recorded cycle that landed after it was recorded (often none)."""
        seen = self.facts_of.get((commit.key, commit.agent_id), set())
        later = tuple(c for c in commit.changes if c.fact_id not in seen)
        if not later:
            if recorded == "applied":
                self.report.already_applied += 1
            else:
                self.report.superseded += 1
            return replace(commit, changes=())
        self.report.continued += 1
        actions = [f"{c.op} {c.fact_id}" for c in later]
        head = f"cycle {commit.key[:12]}, writes that landed later: "
        return replace(
            commit, changes=later, rejected=(), message=_listing(head, actions, unit="writes")
        )

    def _held(self, agent_id: str) -> set[str]:
        if agent_id not in self.held:
            held = self.store.as_of(agent_id) if agent_id in self.agents else []
            self.held[agent_id] = {f.fact_id for f in held}
        return self.held[agent_id]

    def _commit(
        self, commit: CycleCommit, changes: list[FactChange], skipped: int
    ) -> Commit | None:
        message = commit.message
        if skipped:
            note = f" ({skipped} writes skipped, see {FEED_CYCLES})"
            message = _cut(message, MAX_MESSAGE_BYTES - len(note.encode())) + note
        result = self.store.commit(
            commit.agent_id,
            changes,
            message=message,
            author=FEED_AUTHOR,
            cycle_id=commit.key,
            approved_by=commit.approved_by,
            event_time=commit.at,
        )
        facts = self.held[commit.agent_id]
        for change in changes:
            (facts.discard if change.op == "delete" else facts.add)(change.fact_id)
        if result is not None:
            self.agents.add(commit.agent_id)
            self.report.commits += 1
            self.report.lessons += commit.key.startswith(LESSON_PREFIX)
            self.report.latest_version = result.version
        return result

    def _record(
        self,
        commit: CycleCommit,
        status: CycleStatus,
        *,
        reasons: list[str],
        made: Commit | None = None,
        sent: int = 0,
        skipped: int = 0,
    ) -> CycleOutcome:
        outcome = CycleOutcome(
            commit.key,
            commit.agent_id,
            status,
            commit.at,
            _cut("; ".join(reasons), _MAX_REASON_CHARS) if reasons else None,
            None if made is None else made.version,
            changes=sent,
            skipped_changes=skipped,
            fact_ids=() if status == "rejected" else tuple(c.fact_id for c in commit.changes),
        )
        if made is not None:
            outcome = replace(outcome, recorded_at=made.timestamp)
        self.note(outcome)
        return outcome

    def note(self, outcome: CycleOutcome, *, recovered: bool = False) -> None:
        """Count ``outcome`` and let later cycles of its agent see the facts it wrote."""
        self.report.outcomes.append(outcome)
        key = (outcome.key, outcome.agent_id)
        if self.status.get(key) != "applied":
            self.status[key] = outcome.status
        self.facts_of.setdefault(key, set()).update(outcome.fact_ids)
        if outcome.status in ("unchanged", "skipped", "rejected"):
            setattr(self.report, outcome.status, getattr(self.report, outcome.status) + 1)
        if outcome.reason is not None and not recovered:
            self.report.problems.append(
                f"{outcome.key} of {outcome.agent_id} ({outcome.status}): {outcome.reason}"
            )
        if outcome.status == "rejected":
            return
        agent = outcome.agent_id
        for fact in outcome.fact_ids:
            current = self.newest.get((agent, fact))
            if current is None or (outcome.at, outcome.key) > current:
                self.newest[(agent, fact)] = (outcome.at, outcome.key)
        self.agent_newest[agent] = max(self.agent_newest.get(agent, outcome.at), outcome.at)


def _recover(store: MemoryStore, run: _FeedRun, *, ledger_exists: bool) -> list[CycleOutcome]:
    """Outcomes of feed commits the ledger lacks: a crash came between commit and record.

    Only the memory commits after the newest one the ledger knows are read (the recent log,
    which log cleanup has not reached). Without a ledger, the whole retained log is read once:
    that is how a memory fed before the ledger existed gets its record.
    """
    head = store.version()
    if head is None:
        return []
    known = run.versions.drop_nulls()
    mark = (known.max() if len(known) else -1) if ledger_exists else None
    if mark is not None and head <= mark:
        return []
    entries = store.log(limit=_ALL if mark is None else head - mark)
    outcomes = []
    for entry in reversed(entries):  # oldest first
        key = (entry.cycle_id, entry.agent_id)
        if (
            entry.author != FEED_AUTHOR
            or entry.kind != "commit"
            or entry.cycle_id is None
            or (mark is not None and entry.version <= mark)
            or key in run.status
        ):
            continue
        cycle = run.by_key.get(key)  # type: ignore[arg-type]
        outcome = CycleOutcome(
            entry.cycle_id,
            entry.agent_id,
            "applied",
            entry.timestamp if cycle is None else cycle.at,
            "recorded from the memory log: the run that applied it stopped before recording it",
            entry.version,
            recorded_at=entry.timestamp,
            changes=entry.added + entry.updated + entry.deleted,
            fact_ids=() if cycle is None else tuple(c.fact_id for c in cycle.changes),
        )
        run.note(outcome, recovered=True)
        outcomes.append(outcome)
    return outcomes
