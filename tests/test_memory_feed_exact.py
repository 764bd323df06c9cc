"""The memory feed applies every cycle exactly once, per agent, whatever the log or a crash did.

Its record of what was applied is the ``memory_feed_cycles`` table, never cleaned up: a human
rollback survives log cleanup, late writes are applied (or skipped with a reason), a crash
between two commits loses nothing, and one poisoned record never blocks the feed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from agentops_assets.cli.main import main
from agentops_assets.defs.memory.assets import knowledge_chunks, memory_facts, memory_index
from agentops_assets.defs.resources import LakeResource
from agentops_assets.memory_feed.feed import (
    FEED_AUTHOR,
    FEED_CYCLES,
    apply_cycle_commits,
    read_memory_events,
    split_cycles,
)
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from memory import FactChange, MemoryStore
from memory.model import MAX_MESSAGE_BYTES, MAX_NAME_CHARS
from tests.conftest import event, write_jsonl

AGENT = "finance-agent-01"


def _write(n: int, trace: str, key: str, content: str = "x", *, minute: int, **kw: object):
    """A memory write of cycle ``trace`` at 09:``minute``; ``n`` makes the event id unique."""
    return event(
        n,
        trace_id=trace,
        ts=f"2026-11-18T09:{minute:02d}:00Z",
        kind="memory_op",
        action=kw.pop("action", "put"),
        action_target=key,
        input_context=content,
        attributes={"namespace": "finance", "fact_key": key},
        **kw,
    )


def _land(paths: Paths, name: str, records: list[dict[str, object]]) -> None:
    write_jsonl(paths.landing / name, records)
    ingest_landing(paths)


def _store(paths: Paths) -> MemoryStore:
    return MemoryStore(paths.table_uri("memory_facts"))


def _feed(paths: Paths):
    commits, rejected = split_cycles(read_memory_events(paths))
    return apply_cycle_commits(_store(paths), commits, rejected=rejected)


def _facts(paths: Paths, agent: str = AGENT) -> dict[str, str]:
    return {f.fact_id: f.content for f in _store(paths).as_of(agent)}


def _ledger(paths: Paths) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(FEED_CYCLES)).sort("cycle_key", "agent_id")


def _feed_commits(store: MemoryStore) -> list[str]:
    return [c.cycle_id for c in store.log(limit=1 << 62) if c.author == FEED_AUTHOR]


# -- item 4: a rollback survives log cleanup -----------------------------------------------


def test_a_rollback_stays_after_log_cleanup_removed_every_feed_commit(paths: Paths) -> None:
    _land(
        paths,
        "a.jsonl",
        [
            _write(1, "c1", "refund.limit", "Refunds over $10,000 need approval.", minute=1),
            _write(2, "c2", "refund.limit", "Refunds need no approval.", minute=2),  # wrong
        ],
    )
    assert _feed(paths).commits == 2
    store = _store(paths)
    good = store.log(AGENT, limit=10)[-1]
    store.rollback(AGENT, good.version, reason="wrong refund lesson", author="maria")
    # Log cleanup past retention: only entries older than the newest checkpoint and the
    # retention are removed, so shorten the retention, wait, checkpoint, clean up.
    table = DeltaTable(store.uri)
    table.alter.set_table_properties({"delta.logRetentionDuration": "interval 1 second"})
    time.sleep(1.2)
    table = DeltaTable(store.uri)
    table.create_checkpoint()
    table.cleanup_metadata()
    log_dir = Path(store.uri) / "_delta_log"
    kept = sorted(p.name for p in log_dir.glob("*.json"))
    assert kept == [f"{table.version():020d}.json"]  # every earlier commit file is gone
    assert _feed_commits(_store(paths)) == []  # the memory log no longer knows the feed

    again = _feed(paths)

    assert _facts(paths) == {"refund.limit": "Refunds over $10,000 need approval."}
    assert again.commits == 0 and again.already_applied == 2
    ledger = _ledger(paths)
    assert ledger["cycle_key"].to_list() == ["c1", "c2"]
    assert ledger["status"].to_list() == ["applied", "applied"]
    assert ledger["memory_version"].to_list() == [good.version, good.version + 1]


# -- item 5: late writes, exact tracking per agent ------------------------------------------


def test_a_late_write_of_another_agent_is_applied(paths: Paths) -> None:
    _land(paths, "a.jsonl", [_write(1, "a1", "fx.source", "ECB", minute=10)])
    assert _feed(paths).commits == 1
    # agent-b's cycle started earlier but lands after agent-a's was fed.
    _land(paths, "b.jsonl", [_write(2, "b1", "fx.source", "Treasury", minute=5, agent_id="b")])

    report = _feed(paths)

    assert _facts(paths, "b") == {"fx.source": "Treasury"}
    assert (report.commits, report.already_applied, report.late) == (1, 1, 0)
    assert _ledger(paths).select("cycle_key", "agent_id", "status").rows() == [
        ("a1", AGENT, "applied"),
        ("b1", "b", "applied"),
    ]


def test_a_trace_shared_by_two_agents_is_applied_for_each(paths: Paths) -> None:
    _land(paths, "a.jsonl", [_write(1, "t1", "k", "from a", minute=1)])
    _feed(paths)
    _land(paths, "b.jsonl", [_write(2, "t1", "k", "from b", minute=1, agent_id="b")])

    assert _feed(paths).commits == 1
    assert _facts(paths, "b") == {"k": "from b"}


def test_writes_of_an_applied_cycle_that_land_later_are_applied(paths: Paths) -> None:
    _land(paths, "part1.jsonl", [_write(1, "c1", "fx.source", "ECB", minute=1)])
    _feed(paths)
    # The rest of the same cycle was in the next landing file.
    _land(paths, "part2.jsonl", [_write(2, "c1", "fx.cutoff", "16:00 CET", minute=1)])

    report = _feed(paths)

    assert _facts(paths) == {"fx.source": "ECB", "fx.cutoff": "16:00 CET"}
    assert (report.commits, report.continued, report.already_applied) == (1, 1, 0)
    assert _feed(paths).commits == 0
    assert sorted(_ledger(paths)["fact_ids"].to_list()) == [["fx.cutoff"], ["fx.source"]]


def test_a_late_cycle_of_the_same_agent_skips_only_facts_newer_cycles_wrote(
    paths: Paths,
) -> None:
    _land(paths, "new.jsonl", [_write(1, "c2", "fx.source", "Treasury (newer)", minute=10)])
    _feed(paths)
    _land(
        paths,
        "late.jsonl",
        [
            _write(2, "c1", "fx.source", "ECB (older)", minute=5),
            _write(3, "c1", "fx.cutoff", "16:00 CET", minute=5),
        ],
    )

    report = _feed(paths)

    assert _facts(paths) == {"fx.source": "Treasury (newer)", "fx.cutoff": "16:00 CET"}
    assert (report.commits, report.late, report.skipped_changes) == (1, 1, 1)
    row = _ledger(paths).filter(pl.col("cycle_key") == "c1").row(0, named=True)
    assert (row["status"], row["changes"], row["skipped_changes"]) == ("applied", 1, 1)
    assert "fx.source" in row["reason"] and "c2" in row["reason"]
    assert any("fx.source" in p for p in report.problems)
    # Fed again: nothing moves.
    assert _feed(paths).commits == 0


def test_a_late_cycle_whose_every_write_is_superseded_is_recorded_as_skipped(
    paths: Paths,
) -> None:
    _land(paths, "new.jsonl", [_write(1, "c2", "k", "newer", minute=10)])
    _feed(paths)
    _land(paths, "late.jsonl", [_write(2, "c1", "k", "older", minute=5)])

    report = _feed(paths)

    assert _facts(paths) == {"k": "newer"}
    assert (report.commits, report.skipped) == (0, 1)
    row = _ledger(paths).filter(pl.col("cycle_key") == "c1").row(0, named=True)
    assert row["status"] == "skipped" and row["memory_version"] is None


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentops_assets.storage.config import Paths
    from agentops_assets.memory_feed.feed import (
        apply_cycle_commits, cycle_commits, read_memory_events,
    )
    from memory import MemoryStore

    paths = Paths.from_env()
    marker = Path(sys.argv[1])

    def progress(position, total):
        if position == 2:  # the first cycle is committed: wait here to be killed
            marker.write_text("committed one")
            time.sleep(600)

    store = MemoryStore(paths.table_uri("memory_facts"))
    apply_cycle_commits(store, cycle_commits(read_memory_events(paths)), progress=progress)
    """
)


def test_a_sigkill_between_two_cycles_with_equal_start_times_loses_neither(
    paths: Paths, tmp_path: Path
) -> None:
    _land(
        paths,
        "a.jsonl",
        [
            _write(1, "c1", "fx.source", "ECB", minute=7),
            _write(2, "c2", "fx.cutoff", "16:00 CET", minute=7),  # the same start time
        ],
    )
    marker = tmp_path / "marker"
    env = {**os.environ, "AGENTOPS_HOME": str(paths.home)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(marker)], env=env, cwd=Path(__file__).parent.parent
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the feed process ended before its first commit"
            assert time.monotonic() < deadline, "the feed process never committed"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        assert child.wait(timeout=30) == -signal.SIGKILL
    assert _feed_commits(_store(paths)) == ["c1"]  # killed after one commit, before the other

    report = _feed(paths)

    assert sorted(_feed_commits(_store(paths))) == ["c1", "c2"]  # each exactly once
    assert _facts(paths) == {"fx.source": "ECB", "fx.cutoff": "16:00 CET"}
    assert (report.commits, report.recovered) == (1, 1)
    assert _ledger(paths).select("cycle_key", "status").rows() == [
        ("c1", "applied"),
        ("c2", "applied"),
    ]
    assert _feed(paths).commits == 0


# -- item 2: one poisoned record never blocks the feed -------------------------------------


def _poisoned_landing(paths: Paths) -> None:
    _land(
        paths,
        "a.jsonl",
        [
            _write(1, "bad-agent", "k", "from a bad agent id", minute=1, agent_id="team/agent 1"),
            _write(2, "bad-key", "line\nbreak", "a key with a newline", minute=2),
            _write(3, "mixed", "ok.key", "kept", minute=3),
            _write(4, "mixed", "tab\tkey", "refused", minute=3),
            _write(5, "good", "fx.source", "ECB", minute=4),
        ],
    )


def test_poisoned_cycles_are_rejected_with_a_reason_and_the_rest_is_applied(
    paths: Paths,
) -> None:
    _poisoned_landing(paths)

    report = _feed(paths)

    assert _facts(paths) == {"ok.key": "kept", "fx.source": "ECB"}
    assert (report.commits, report.rejected, report.skipped_changes) == (2, 2, 1)
    ledger = _ledger(paths)
    rejected = ledger.filter(pl.col("status") == "rejected")
    assert sorted(rejected["cycle_key"]) == ["bad-agent", "bad-key"]
    assert rejected["reason"].str.contains("agent_id").any()
    assert rejected["reason"].str.contains("control characters").any()
    mixed = ledger.filter(pl.col("cycle_key") == "mixed").row(0, named=True)
    assert mixed["status"] == "applied" and "tab" in mixed["reason"]
    again = _feed(paths)
    assert (again.commits, again.rejected) == (0, 0)  # rejected once, recorded, not retried


def test_materializing_the_memory_group_succeeds_despite_poisoned_records(
    paths: Paths,
) -> None:
    _poisoned_landing(paths)

    result = dg.materialize(
        [memory_facts, knowledge_chunks, memory_index],
        resources={"lake": LakeResource(home=str(paths.home))},
    )

    assert result.success
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    facts = meta["memory_facts"]
    assert facts["facts"].value == 2 and facts["new_commits"].value == 2
    assert facts["rejected_cycles"].value == 2 and facts["skipped_changes"].value == 1
    not_applied = [r.data for r in facts["not_applied"].records]
    assert {r["status"] for r in not_applied if r["cycle"] == "bad-agent"} == {"rejected"}
    assert not_applied[0]["status"] == "rejected"  # rejected cycles lead
    assert meta["memory_index"]["facts"].value == 2


# -- item 13: bounded commit messages ------------------------------------------------------


def test_commit_messages_and_names_are_bounded_with_a_clear_error(paths: Paths) -> None:
    store = _store(paths)
    put = [FactChange.put("k", "v")]
    with pytest.raises(ValueError, match="message is 5,242,880 bytes.*4,096"):
        store.commit(AGENT, put, message="m" * 5 * 1024 * 1024, author="ops")
    with pytest.raises(ValueError, match="author"):
        store.commit(AGENT, put, message="m", author="a" * (MAX_NAME_CHARS + 1))
    with pytest.raises(ValueError, match="approved_by"):
        store.commit(AGENT, put, message="m", author="a", approved_by="b" * 300)
    with pytest.raises(ValueError, match="cycle_id"):
        store.commit(AGENT, put, message="m", author="a", cycle_id="c" * 300)
    assert store.version() is None  # nothing was written
    first = store.commit(AGENT, put, message="é" * (MAX_MESSAGE_BYTES // 2), author="a" * 256)
    assert first is not None
    store.commit(AGENT, [FactChange.put("k", "w")], message="m", author="a")
    with pytest.raises(ValueError, match="reason is"):
        store.rollback(AGENT, first.version, reason="r" * (MAX_MESSAGE_BYTES + 1), author="a")
    assert _facts(paths) == {"k": "w"}


def test_a_too_long_commit_message_is_one_clear_sentence_in_the_cli(paths: Paths) -> None:
    args = ["memory", "commit", AGENT, "--fact", "k", "--content", "v", "-m", "m" * 5000]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 2 and result.exception is not None  # a usage error
    assert "message is 5,000 bytes, more than the 4,096-byte limit" in result.output
    assert "Traceback" not in result.output
    assert _store(paths).version() is None


def test_the_feed_bounds_its_own_messages(paths: Paths) -> None:
    writes = [_write(n, "big", f"fact.{n:05d}", f"value {n}", minute=1) for n in range(3000)]
    review = event(
        9999,
        trace_id="r1",
        ts="2026-11-18T09:30:00Z",
        kind="human_review",
        feedback={
            "kind": "correct",
            "correction": "Refunds over $10,000 need the controller.",
            "rationale": "Policy R-1. " * 2000,  # 24 KB of rationale
            "reviewer": "maria",
        },
        attributes={"lesson": True, "namespace": "finance", "fact_key": "refund.limit"},
    )
    _land(paths, "a.jsonl", [*writes, review])

    report = _feed(paths)

    assert (report.commits, report.lessons) == (2, 1)
    lesson, cycle = _store(paths).log(AGENT, limit=2)
    assert cycle.added == 3000 and lesson.approved_by == "maria"
    for commit in (cycle, lesson):
        assert len(commit.message.encode()) <= MAX_MESSAGE_BYTES
    assert cycle.message.startswith("cycle big: put fact.00000") and "more" in cycle.message
    assert "Policy R-1" in lesson.message
