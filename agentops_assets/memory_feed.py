"""Memory operations and human lessons found in ``agent_events``, as memory commits.

Each reasoning cycle's memory writes (``kind = memory_op``, actions add / update / put /
delete) become one commit of that agent's memory; a reviewer's correction marked as a lesson
(``human_review`` with ``feedback_kind = correct`` and ``lesson`` in its attributes) becomes a
commit of its own, approved by the reviewer. The commit's ``cycle_id`` names its source, so a
cycle is applied once, however often the feed runs, and a rollback is never undone by a rerun.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import polars as pl

from agentops_assets import lake
from agentops_assets.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS
from memory import FactChange, InvalidFactError, MemoryStore

FEED_AUTHOR: Final = "agentops.memory_feed"
LESSON_PREFIX: Final = "review:"
_WRITES: Final = ("add", "update", "put", "delete")
_ALL: Final = 1 << 62  # log() limit meaning "the whole history"


@dataclass(frozen=True)
class CycleCommit:
    """The memory commit one reasoning cycle (or one lesson) asks for."""

    key: str  # the cycle's trace id, or "review:<event id>" for a lesson
    agent_id: str
    at: datetime
    changes: tuple[FactChange, ...]
    message: str
    approved_by: str | None = None


@dataclass
class FeedReport:
    """What one run of the feed did."""

    commits: int = 0
    unchanged: int = 0  # cycles whose writes left the memory as it was
    already_applied: int = 0
    superseded: int = 0  # older than the newest applied cycle, yet not applied: left alone
    skipped_changes: int = 0  # deletes of facts the agent no longer held, invalid facts
    lessons: int = 0
    latest_version: int | None = None
    problems: list[str] = field(default_factory=list)


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
    """Group memory events into commits: one per agent and cycle, one per lesson, in time order."""
    if events.is_empty():
        return []
    commits: list[CycleCommit] = []
    writes = events.filter((pl.col("kind") == "memory_op") & pl.col("fact_id").is_not_null())
    for (agent_id, trace_id), cycle in writes.group_by("agent_id", "trace_id"):
        last_per_fact = cycle.unique("fact_id", keep="last", maintain_order=True)
        changes = tuple(_change(row) for row in last_per_fact.iter_rows(named=True))
        actions = ", ".join(
            f"{row['action']} {row['fact_id']}" for row in cycle.iter_rows(named=True)
        )
        commits.append(
            CycleCommit(
                key=str(trace_id),
                agent_id=str(agent_id),
                at=cycle.get_column("ts").min(),
                changes=tuple(c for c in changes if c is not None),
                message=f"cycle {str(trace_id)[:12]}: {actions}",
            )
        )
    lessons = events.filter(
        (pl.col("kind") == "human_review")
        & pl.col("lesson")
        & pl.col("fact_id").is_not_null()
        & pl.col("feedback_correction").is_not_null()
    )
    for row in lessons.iter_rows(named=True):
        change = _lesson(row)
        if change is None:
            continue
        why = row["feedback_rationale"] or "no rationale given"
        commits.append(
            CycleCommit(
                key=f"{LESSON_PREFIX}{row['event_id']}",
                agent_id=row["agent_id"],
                at=row["ts"],
                changes=(change,),
                message=f"review {row['reviewer']} corrects {row['fact_id']}: {why}",
                approved_by=row["reviewer"] or "reviewer",
            )
        )
    return sorted((c for c in commits if c.changes), key=lambda c: (c.at, c.key))


def _change(row: dict[str, object]) -> FactChange | None:
    fact_id = str(row["fact_id"])
    if row["action"] == "delete":
        return FactChange.delete(fact_id)
    try:
        return FactChange.put(
            fact_id,
            str(row["content"] or ""),
            namespace=str(row["namespace"] or "default"),
            source=str(row["event_id"]),
        )
    except InvalidFactError:
        return None  # an empty or oversized write is not a fact; counted by the caller


def _lesson(row: dict[str, object]) -> FactChange | None:
    try:
        return FactChange.put(
            str(row["fact_id"]),
            str(row["feedback_correction"]),
            namespace=str(row["namespace"] or "default"),
            source=str(row["event_id"]),
            metadata={"reviewer": row["reviewer"], "lesson": True},
        )
    except InvalidFactError:
        return None


def applied_keys(store: MemoryStore) -> set[str]:
    """Cycle keys the feed has already committed, read from the memory's history."""
    return {
        c.cycle_id
        for c in store.log(limit=_ALL)
        if c.author == FEED_AUTHOR and c.cycle_id is not None
    }


def apply_cycle_commits(
    store: MemoryStore,
    commits: Iterable[CycleCommit],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> FeedReport:
    """Commit each cycle not applied before, in order; deletes of facts not held are skipped.

    A cycle older than the newest applied one is not applied late: it either changed nothing
    when its turn came (so it left no commit) or arrived after newer cycles, and replaying it
    now would put older state over newer.
    """
    report = FeedReport()
    commits = list(commits)
    done = applied_keys(store)
    watermark = max((c.at for c in commits if c.key in done), default=None)
    held: dict[str, set[str]] = defaultdict(set)
    loaded: set[str] = set()
    for position, commit in enumerate(commits, start=1):
        if progress:
            progress(position, len(commits))
        if commit.key in done:
            report.already_applied += 1
            continue
        if watermark is not None and commit.at <= watermark:
            report.superseded += 1
            continue
        if commit.agent_id not in loaded:
            if commit.agent_id in store.agents():
                held[commit.agent_id] = {f.fact_id for f in store.as_of(commit.agent_id)}
            loaded.add(commit.agent_id)
        facts = held[commit.agent_id]
        changes = [c for c in commit.changes if c.op != "delete" or c.fact_id in facts]
        report.skipped_changes += len(commit.changes) - len(changes)
        if not changes:
            continue
        result = store.commit(
            commit.agent_id,
            changes,
            message=commit.message,
            author=FEED_AUTHOR,
            cycle_id=commit.key,
            approved_by=commit.approved_by,
        )
        for change in changes:
            (facts.discard if change.op == "delete" else facts.add)(change.fact_id)
        if result is None:
            report.unchanged += 1
            continue
        report.commits += 1
        report.lessons += commit.key.startswith(LESSON_PREFIX)
        report.latest_version = result.version
    return report
