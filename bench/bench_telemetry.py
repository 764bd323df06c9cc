"""Telemetry lakehouse benchmarks: simulate, ingest JSONL and OTLP, query, against targets.

Prints each figure beside its target. Sizes follow the issue: a million JSONL events, OTLP
spans at the same order, SQL over the million events. Runs on a temporary AGENTOPS_HOME.

    python bench/bench_telemetry.py [--events 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
from _report import row, run_child, work_folder

from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.storage.sql import query

START = date(2026, 11, 2)
EVENTS_PER_CYCLE_DAY = 10.5  # about 10 events a reasoning cycle; calibrated below
INGEST_CODE = """
import json, sys, time
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
t = time.perf_counter()
report = ingest_landing(Paths.from_env())
print(json.dumps({"seconds": time.perf_counter() - t, "records": report.records,
                  "new": report.new_rows, "quarantined": report.quarantined_rows}))
"""


def _simulate(home: Path, events: int, fmt: str) -> tuple[int, float, int]:
    paths = Paths.from_env(home)
    agents, days = 100, 7
    cycles = max(1, round(events / (agents * days * EVENTS_PER_CYCLE_DAY)))
    started = time.perf_counter()
    summary = simulate(
        paths.landing, paths.simulator, agents=agents, days=days, seed=7, start=START,
        fmt=fmt, cycles_per_agent_day=cycles,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in paths.landing.rglob("*") if p.is_file())
    return summary.events + summary.bad_total, seconds, size


def _ingest_child(home: Path) -> tuple[dict[str, float], float]:
    """Ingest in a child process; returns its report and its peak RSS in MB."""
    import json

    out, peak_mb = run_child(home, INGEST_CODE)
    return json.loads(out), peak_mb


def _duckdb_floor(home: Path) -> float:
    """Seconds for DuckDB's read_json -> Parquet of the same landing files."""
    files = sorted(str(p) for p in (home / "landing").rglob("*.jsonl"))
    target = home / "duckdb_floor.parquet"
    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(
        "COPY (SELECT * FROM read_json($files, format='newline_delimited', union_by_name=true)) "
        f"TO '{target}' (FORMAT parquet)",
        {"files": files},
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--spans", type=int, default=500_000)
    parser.add_argument("--keep", type=Path, help="keep the working folder here")
    args = parser.parse_args()
    with work_folder("agentops-bench-", args.keep) as work:
        print(f"Telemetry benchmarks on {os.cpu_count()} cores, work folder {work}")
        jsonl_home = work / "jsonl"
        events, sim_s, size = _simulate(jsonl_home, args.events, "jsonl")
        row("simulate (JSONL)", f"{events:,} ev in {sim_s:.1f} s", "well under 60 s", sim_s < 30)
        print(f"  {'':<44} {size / 1e6:>19,.0f} MB  {events / sim_s:,.0f} events/s")

        report, peak_mb = _ingest_child(jsonl_home)
        rate = report["records"] / report["seconds"]
        row("ingest JSONL -> agent_events", f"{rate:,.0f} ev/s", ">= 200,000 ev/s", rate >= 2e5)
        stored = f"{int(report['new']):,} / {int(report['quarantined']):,}"
        row(f"  of {int(report['records']):,} records: stored / quarantined", stored, "", None)
        row(
            "  peak memory of the ingest process",
            f"{peak_mb:,.0f} MB",
            "< 3,000 MB",
            peak_mb < 3000,
        )
        floor_s = _duckdb_floor(jsonl_home)
        floor_rate = report["records"] / floor_s
        row("DuckDB read_json -> Parquet (floor)", f"{floor_rate:,.0f} ev/s", "", None)
        row(
            "  ratio ingest / DuckDB floor", f"{rate / floor_rate:.2f}x", ">= 1.0x to beat it", None
        )

        paths = Paths.from_env(jsonl_home)
        sql = (
            "SELECT agent_type, kind, count(*) AS n, avg(duration_ms) AS ms "
            "FROM agent_events GROUP BY ALL"
        )
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            query(paths, sql)
            timings.append(time.perf_counter() - started)
        median = statistics.median(timings)
        row(
            "agentops sql GROUP BY, 1M events (query)",
            f"{median * 1000:,.0f} ms",
            "< 500 ms",
            median < 0.5,
        )
        env = {**os.environ, "AGENTOPS_HOME": str(jsonl_home)}
        started = time.perf_counter()
        command = [sys.executable, "-m", "agentops_assets", "sql", sql]
        subprocess.run(command, env=env, check=True, capture_output=True)
        cli = time.perf_counter() - started
        row("  whole `agentops sql` process", f"{cli * 1000:,.0f} ms", "(incl. start-up)", None)

        otlp_home = work / "otlp"
        spans, sim_s, size = _simulate(otlp_home, args.spans, "otlp")
        report, _ = _ingest_child(otlp_home)
        rate = report["records"] / report["seconds"]
        row(
            "ingest OTLP JSON -> agent_events",
            f"{rate:,.0f} spans/s",
            ">= 50,000 spans/s",
            rate >= 5e4,
        )
        row("  spans read", f"{int(report['records']):,}", f"{size / 1e6:,.0f} MB", None)


if __name__ == "__main__":
    main()
