"""Behaviour anomalies: every day of the 10 M-event FinOps bench data, one day, and the rogue
agent's cycles ranked on simulated fleets.

The anomalies share the drift layer's budget (baselines, drift and anomalies in under 30 s and
4 GB over the 10 M events; one day in under 3 s), so their own targets here are half of it.
Reuse the home `bench_finops.py --keep DIR` leaves (its `DIR/fleet`), or build one:

    python bench/bench_anomalies.py [--home DIR/fleet] [--keep DIR] [--seeds 3 7]
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from _report import holds, row, run_child, shared_home, work_folder

from agentops_assets.finops.refresh import event_date_range, refresh_all
from agentops_assets.finops.tables import REASONING_CYCLES
from agentops_assets.simulator import simulate
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing

DETECT_CODE = """
import json, sys, time
from datetime import date, timedelta
import polars as pl
from agentops_assets.storage.config import Paths
from agentops_assets.drift.anomalies import detect_anomalies, read_inputs
first, last = date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2])
paths = Paths.from_env()
wall, cpu = time.perf_counter(), time.process_time()
cycles, actions = read_inputs(paths, first, last)
read = time.perf_counter() - wall
found = detect_anomalies(cycles, actions, first, last)
seconds, cpu = time.perf_counter() - wall, time.process_time() - cpu
# Days with a week of history before them (the rest are never scored).
since = max(first, cycles["day"].min() + timedelta(days=7))
scored = cycles.filter(pl.col("day") >= since).group_by("day").len("cycles")
shares = (
    scored.join(found.group_by("day").len("flagged"), on="day", how="left")
    .fill_null(0)
    .select(pl.col("flagged") / pl.col("cycles"))
    .to_series()
)
print(json.dumps({
    "seconds": seconds, "cpu": cpu, "read": read, "cycles": int(scored["cycles"].sum()),
    "actions": actions.height, "anomalies": found.height,
    "median_share": shares.median(), "max_share": shares.max(),
}))
"""
SHARE_TARGET = 0.01


def _ensure_cycles(home: Path) -> tuple[Paths, date, date]:
    """The kept home's days of cycles; computes the FinOps tables when it lacks them."""
    paths = Paths.from_env(home)
    bounds = event_date_range(paths)
    if bounds is None:
        raise SystemExit(f"{home} holds no agent_events; run bench/bench_finops.py --keep first.")
    cycles = lake.scan(paths.table_uri(REASONING_CYCLES))
    if cycles is None:
        refresh_all(paths, *bounds)
        cycles = pl.scan_delta(paths.table_uri(REASONING_CYCLES))
    # The days cycles started on: the events of the last one's cycles run into the next day.
    first, last = (
        cycles.select(pl.col("day").min(), pl.col("day").max().alias("last")).collect().row(0)
    )
    return paths, first, last


def _build(work: Path) -> Path:
    """A fresh 10 M-event home, the way bench_finops.py builds it."""
    from bench_finops import _build as build_finops_home

    paths, first, last, _ = build_finops_home(work / "fleet", 10_000_000, 9)
    refresh_all(paths, first, last)
    return paths.home


def _speed(paths: Paths, first: date, last: date) -> None:
    out, peak_mb = run_child(paths.home, DETECT_CODE, first.isoformat(), last.isoformat())
    full = json.loads(out)
    days = (last - first).days + 1
    row(f"anomalies over {full['actions'] / 1e6:.1f} M events, {days} days",
        f"{full['seconds']:.1f} s", "< 15 s (half of 30 s)", full["seconds"] < 15)  # fmt: skip
    row("  of which reading the lake", f"{full['read']:.1f} s", "", None)
    row("  CPU seconds (all threads)", f"{full['cpu']:.1f} s", "", None)
    row("  peak memory of the process", f"{peak_mb:,.0f} MB", "< 4,000 MB", peak_mb < 4000)
    row(f"  cycles flagged of {full['cycles']:,}", f"{full['anomalies']:,}", "", None)
    row("  median day: share of cycles flagged", f"{full['median_share']:.3%}",
        "< 1 %", full["median_share"] < SHARE_TARGET)  # fmt: skip
    row("  busiest day (weekly incidents repeat)", f"{full['max_share']:.3%}", "", None)

    # Best of three: the machine is shared, and one day is short enough to repeat.
    runs = [
        run_child(paths.home, DETECT_CODE, last.isoformat(), last.isoformat()) for _ in range(3)
    ]
    one = min((json.loads(out) for out, _ in runs), key=lambda r: r["seconds"])
    row(f"one day ({last}), {one['actions'] / 1e6:.1f} M events read, best of 3",
        f"{one['seconds']:.2f} s", "< 1.5 s (half of 3 s)", one["seconds"] < 1.5)  # fmt: skip
    row("  CPU seconds (all threads)", f"{one['cpu']:.2f} s", "", None)


def _fleet(root: Path, seed: int, incidents: list[str]) -> tuple[Paths, date, date]:
    start = date(2026, 10, 1)
    paths = Paths.from_env(root)
    simulate(
        paths.landing, paths.simulator, agents=20, days=16, seed=seed, start=start,
        cycles_per_agent_day=40, incidents=incidents,
    )  # fmt: skip
    ingest_landing(paths)
    last = start + timedelta(days=15)
    refresh_all(paths, start, last)
    return paths, start, last


def _rogue(work: Path, seeds: list[int]) -> None:
    """The rogue agent's cycles rank first on their day; the same fleet without it is quiet."""
    from agentops_assets.drift.anomalies import detect_anomalies, read_inputs

    for seed in seeds:
        paths, first, last = _fleet(work / f"rogue-{seed}", seed, ["rogue_agent"])
        (truth,) = json.loads((paths.simulator / "incidents.json").read_text())
        day = date.fromisoformat(truth["day"])
        events = pl.scan_delta(paths.table_uri("agent_events"))
        rogue = set(
            events.filter(
                (pl.col("agent_id") == truth["agent_ids"][0])
                & pl.col("action").is_in(truth["details"]["tools"])
            )
            .select("trace_id")
            .collect()["trace_id"]
        )
        found = detect_anomalies(*read_inputs(paths, first, last), first, last)
        that_day = found.filter(pl.col("day") == day).sort("rank")
        top = set(that_day.head(len(rogue))["trace_id"])
        history = (day - first).days
        name = f"seed {seed}: rogue cycles first on day {history}"
        if history < 7:
            row(name, "no baseline yet", "", None)
        else:
            row(name, f"top {len(top & rogue)} of {len(rogue)}", "all at the top",
                top == rogue)  # fmt: skip
            row("  other cycles flagged that day", f"{that_day.height - len(rogue)}", "", None)
        clean, first, last = _fleet(work / f"clean-{seed}", seed, [])
        cycles, actions = read_inputs(clean, first, last)
        flagged = detect_anomalies(cycles, actions, first, last).height
        scored = cycles.filter(pl.col("day") >= first + timedelta(days=7)).height
        row("  same fleet without incidents: flagged", f"{flagged} of {scored:,}",
            "< 1 %", flagged < SHARE_TARGET * scored)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home bench_finops.py --keep left (DIR/fleet)")
    parser.add_argument("--keep", type=Path, help="keep the working folder here")
    parser.add_argument("--seeds", type=int, nargs="*", default=[3, 7])
    args = parser.parse_args()
    with work_folder("agentops-bench-anomalies-", args.keep) as work:
        print(f"Anomaly benchmarks on {os.cpu_count()} cores, work folder {work}")
        shared = shared_home()
        home = args.home or (shared if holds(shared, "reasoning_cycles") else _build(work))
        paths, first, last = _ensure_cycles(home)
        _speed(paths, first, last)
        _rogue(work, args.seeds)


if __name__ == "__main__":
    main()
