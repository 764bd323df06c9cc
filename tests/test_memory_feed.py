"""Memory writes and lessons in agent_events become memory commits, once each."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from agentops_assets.memory_feed.feed import (
    FEED_AUTHOR,
    apply_cycle_commits,
    cycle_commits,
    read_memory_events,
)
from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from memory import MemoryStore
from tests.conftest import event, write_jsonl


def _store(paths: Paths) -> MemoryStore:
    return MemoryStore(paths.table_uri("memory_facts"))


def _memory_event(n: int, trace: str, action: str, key: str, content: str = "x", **kw):
    return event(
        n,
        trace_id=trace,
        kind="memory_op",
        action=action,
        action_target=key,
        input_context=content,
        attributes={"namespace": "finance", "fact_key": key},
        **{"ts": _at(n), **kw},
    )


def _at(n: int) -> str:
    return f"2026-11-18T09:{n:02d}:00Z"


def test_each_cycle_is_one_commit_and_lessons_are_approved(paths: Paths) -> None:
    records = [
        _memory_event(1, "c1", "add", "fx.source", "Use ECB rates."),
        _memory_event(2, "c1", "add", "refund.limit", "Refunds over $10,000 need no approval."),
        _memory_event(3, "c1", "read", "fx.source"),
        _memory_event(4, "c2", "update", "fx.source", "Use treasury rates."),
        _memory_event(5, "c2", "delete", "gone.fact"),  # never held: skipped, not an error
        event(
            6,
            trace_id="c3",
            ts=_at(6),
            kind="human_review",
            feedback={
                "kind": "correct",
                "correction": "Refunds over $10,000 need the controller.",
                "rationale": "Policy R-1",
                "reviewer": "maria",
            },
            attributes={"lesson": True, "namespace": "finance", "fact_key": "refund.limit"},
        ),
    ]
    write_jsonl(paths.landing / "a.jsonl", records)
    ingest_landing(paths)
    store = _store(paths)
    report = apply_cycle_commits(store, cycle_commits(read_memory_events(paths)))
    assert (report.commits, report.lessons, report.skipped_changes) == (3, 1, 1)
    log = store.log("finance-agent-01", limit=10)
    assert [c.cycle_id for c in log] == ["review:ev-00000006", "c2", "c1"]
    assert all(c.author == FEED_AUTHOR for c in log)
    assert log[0].approved_by == "maria" and "Policy R-1" in log[0].message
    # Each commit keeps the time of its cycle (its first event), whenever it was ingested.
    assert [c.event_time for c in log] == [
        datetime.fromisoformat(_at(n).replace("Z", "+00:00")) for n in (6, 4, 1)
    ]
    facts = {f.fact_id: f.content for f in store.as_of("finance-agent-01")}
    assert facts == {
        "fx.source": "Use treasury rates.",
        "refund.limit": "Refunds over $10,000 need the controller.",
    }


def test_rerunning_the_feed_applies_nothing_and_keeps_a_rollback(paths: Paths) -> None:
    write_jsonl(
        paths.landing / "a.jsonl",
        [
            _memory_event(1, "c1", "add", "k", "first"),
            _memory_event(2, "c2", "update", "k", "second"),
        ],
    )
    ingest_landing(paths)
    store = _store(paths)
    apply_cycle_commits(store, cycle_commits(read_memory_events(paths)))
    first = store.log("finance-agent-01", limit=10)[-1]
    store.rollback("finance-agent-01", first.version, reason="bad lesson", author="maria")
    again = apply_cycle_commits(store, cycle_commits(read_memory_events(paths)))
    assert (again.commits, again.already_applied) == (0, 2)
    assert [f.content for f in store.as_of("finance-agent-01")] == ["first"]


def test_a_cycle_that_changed_nothing_is_not_replayed_later(paths: Paths) -> None:
    """A delete of a fact not yet held does nothing; a rerun must not replay it over newer state."""
    write_jsonl(
        paths.landing / "a.jsonl",
        [
            _memory_event(1, "c1", "add", "other", "keeps the agent known"),
            _memory_event(2, "c2", "delete", "k"),  # k not held yet: nothing to do
            _memory_event(3, "c3", "add", "k", "added later"),
        ],
    )
    ingest_landing(paths)
    store = _store(paths)
    first = apply_cycle_commits(store, cycle_commits(read_memory_events(paths)))
    assert (first.commits, first.skipped_changes) == (2, 1)
    again = apply_cycle_commits(store, cycle_commits(read_memory_events(paths)))
    assert (again.commits, again.superseded) == (0, 1)
    assert {f.fact_id for f in store.as_of("finance-agent-01")} == {"other", "k"}


@pytest.mark.parametrize("fmt", ["jsonl", "otlp"])
def test_simulated_fleet_builds_a_memory_history(paths: Paths, fmt: str) -> None:
    simulate(
        paths.landing, paths.simulator, agents=4, days=2, seed=11, start=date(2026, 11, 2),
        fmt=fmt, cycles_per_agent_day=12,
    )  # fmt: skip
    ingest_landing(paths)
    events = read_memory_events(paths)
    commits = cycle_commits(events)
    assert commits and all(c.changes for c in commits)
    writes = events.filter(pl.col("kind") == "memory_op")
    assert writes["fact_id"].null_count() == 0
    assert not writes["content"].str.starts_with('[{"role"').any()  # OTLP messages unwrapped
    report = apply_cycle_commits(_store(paths), commits)
    assert report.commits >= len(commits) // 2
