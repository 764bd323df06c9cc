"""Memory library benchmarks against the issue's targets, on a temporary folder.

Prints each figure beside its target: commit of 10 facts (p50/p95 over 200 commits), ``as_of``
of an agent holding 100,000 facts, and rollback (and log) at 10 and 1,000 commits in history.

    python bench/bench_memory.py [--commits 200] [--facts 100000] [--history 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import deltalake
import polars as pl
from _report import ms, quantile, row, timed, work_folder
from deltalake import DeltaTable

from memory import FactChange, MemoryStore

TARGET = "finance-agent-01"


def bench_commits(root: Path, commits: int) -> None:
    """Commits of 10 facts (5 new, 5 updated) to one agent, among a few other agents."""
    store = MemoryStore(root / "commits")
    for agent in range(5):
        store.commit(
            f"other-{agent}",
            [FactChange.put(f"seed.{i}", f"seed fact {i}") for i in range(100)],
            message="seed",
            author="bench",
        )
    times = []
    for n in range(commits):
        changes = [
            FactChange.add(f"Fact {n}.{i} about pricing.", fact_id=f"f.{n}.{i}") for i in range(5)
        ]
        changes += [
            FactChange.update(f"f.{n - 1}.{i}", f"Revised fact {n}.{i}.") for i in range(5) if n > 0
        ]
        changes += [
            FactChange.add(f"Extra {n}.{i}.", fact_id=f"x.{n}.{i}") for i in range(5) if n == 0
        ]
        times.append(
            timed(lambda c=changes, n=n: store.commit(TARGET, c, message=f"cycle {n}", author="b"))
        )
    p50, p95 = statistics.median(times), quantile(times, 0.95)
    row(f"commit of 10 facts, p50 ({commits} commits)", ms(p50), "< 50 ms", p50 < 0.05)
    row("commit of 10 facts, p95", ms(p95), "(reported)", None)
    row("commit of 10 facts, max (includes compaction)", ms(max(times)), "(reported)", None)


def bench_as_of(root: Path, facts: int) -> None:
    """``as_of`` of an agent holding ``facts`` facts, latest and older version."""
    store = MemoryStore(root / "as_of")
    batch = 20_000
    for start in range(0, facts, batch):
        changes = [
            FactChange.add(
                f"Customer {i} prefers contact by email before noon; tier {i % 5}.",
                fact_id=f"crm.customer.{i}",
                namespace="crm",
                metadata={"tier": i % 5},
                source=f"tr-{i // 10}",
                confidence=0.5 + (i % 50) / 100,
            )
            for i in range(start, min(start + batch, facts))
        ]
        store.commit(TARGET, changes, message="bulk load", author="bench")
    store.commit("other-agent", [FactChange.add("unrelated")], message="m", author="b")
    loaded = store.version()
    assert loaded is not None
    store.commit(
        TARGET, [FactChange.update("crm.customer.1", "Moved to phone.")], message="m", author="b"
    )
    latest = [timed(lambda: store.as_of(TARGET)) for _ in range(3)]
    older = [timed(lambda: store.as_of(TARGET, version=loaded)) for _ in range(3)]
    frame = [timed(lambda: store.frame(TARGET)) for _ in range(3)]
    count = len(store.as_of(TARGET))
    assert count == facts, count
    best = min(latest)
    row(f"as_of, agent with {facts:,} facts (latest)", ms(best), "< 1 s", best < 1.0)
    row(
        f"as_of, agent with {facts:,} facts (older version)",
        ms(min(older)),
        "< 1 s",
        min(older) < 1.0,
    )
    row("  same as a polars frame (frame())", ms(min(frame)), "(reported)", None)


def _grow(store: MemoryStore, until: int) -> None:
    """Commit small changes (half to the target agent) until the store reaches ``until``.

    Each commit rewrites one of ten facts, so history grows while the data stays the same size:
    the figures isolate the length of the history.
    """
    n = store.version() or 0
    while (store.version() or 0) < until:
        n += 1
        agent = TARGET if n % 2 else f"agent-{n % 7}"
        change = FactChange.put(f"h.{n % 10}", f"history fact {n}")
        store.commit(agent, [change], message=f"h{n}", author="bench")


def _rollback_times(store: MemoryStore, repeats: int = 5) -> list[float]:
    """Commit a bad change to 10 of the target's facts, then time the rollback that undoes it."""
    times = []
    for i in range(repeats):
        good = store.version()
        assert good is not None
        bad = [FactChange.update(f"base.{k}", f"wrong {i}.{k}") for k in range(i * 10, i * 10 + 10)]
        store.commit(TARGET, bad, message="bad change", author="bench")
        undo = lambda good=good: store.rollback(TARGET, good, reason="bad", author="b")  # noqa: E731
        times.append(timed(undo))
    return times


def bench_rollback(root: Path, history: int) -> None:
    """Rollback and log of one agent (1,000 facts) at 10 and at ``history`` commits."""
    store = MemoryStore(root / "rollback")
    store.commit(
        TARGET,
        [FactChange.put(f"base.{i}", f"base fact {i}") for i in range(1000)],
        message="base",
        author="bench",
    )
    figures = {}
    for size in (10, history):
        _grow(store, size)
        rollback = statistics.median(_rollback_times(store))
        log = statistics.median(timed(lambda: store.log(TARGET, limit=20)) for _ in range(5))
        table = DeltaTable(store.uri)
        listing = min(timed(table.update_incremental) for _ in range(5))
        figures[size] = rollback
        row(f"rollback at {size:,} commits in history", ms(rollback), "flat", None)
        row(f"  log(agent, limit=20) at {size:,} commits", ms(log), "(reported)", None)
        row(f"  one _delta_log listing at {size:,} commits", ms(listing), "(reported)", None)
    ratio = figures[history] / figures[10]
    row(f"rollback ratio {history:,} / 10 commits", f"x{ratio:.2f}", "about x1 (< x2)", ratio < 2)
    far = timed(lambda: store.rollback(TARGET, 1, reason="far back", author="b"))
    row(f"rollback to v1 at {store.version():,} commits", ms(far), "(reported)", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    with work_folder("bench_memory_", args.keep) as root:
        print(
            f"memory bench: {os.cpu_count()} cores, deltalake {deltalake.__version__}, "
            f"polars {pl.__version__}, local disk at {root}"
        )
        started = time.perf_counter()
        bench_commits(root, args.commits)
        bench_as_of(root, args.facts)
        bench_rollback(root, args.history)
    print(f"  total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
