"""Ingest throughput with the lake on a local S3 server against the lake on the local disk.

The same simulated fleet's landing files (JSONL, local) are ingested into ``agent_events``
twice per round: once with the lake under ``$AGENTOPS_HOME/lake``, once with
``AGENTOPS_LAKE_URI=s3://agentops/bench-N/lake`` on moto's S3 server started here on a loopback
port. Each ingest runs in a fresh child process; events/s is records read / the ingest's own
wall time, and CPU is the child's user+system time. The S3 server is a single Python process
on the same two cores, so this measures the cost of the object-store path (HTTP requests,
conditional commits, no local page cache) on this machine, not the speed of a real S3.

    python bench/bench_s3_ingest.py [--events 100000] [--rounds 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _report import row, work_folder

from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.storage.local_s3 import LocalS3, start_local_s3

START = date(2026, 11, 2)
EVENTS_PER_CYCLE_DAY = 10.5  # as bench_telemetry.py: about 10 events a reasoning cycle
INGEST_CODE = """
import json, time
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
t = time.perf_counter()
report = ingest_landing(Paths.from_env())
print(json.dumps({"seconds": time.perf_counter() - t, "records": report.records,
                  "new": report.new_rows}))
"""


def _simulate(home: Path, events: int) -> int:
    """Write the fleet's landing files under ``home``; returns the events written."""
    paths = Paths.from_env(home)
    agents, days = 100, 7
    cycles = max(1, round(events / (agents * days * EVENTS_PER_CYCLE_DAY)))
    summary = simulate(
        paths.landing, paths.simulator, agents=agents, days=days, seed=7, start=START,
        fmt="jsonl", cycles_per_agent_day=cycles,
    )  # fmt: skip
    return summary.events + summary.bad_total


def _server_cpu(server: LocalS3) -> float:
    """CPU seconds the S3 server process has used so far (from /proc)."""
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ingest(home: Path, extra_env: dict[str, str]) -> dict[str, float]:
    """Ingest ``home``'s landing in a child process; its report plus its CPU seconds."""
    env = {**os.environ, "AGENTOPS_HOME": str(home), **extra_env}
    if not extra_env:
        for name in ("AGENTOPS_LAKE_URI", "AGENTOPS_INDEX_URI"):
            env.pop(name, None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", INGEST_CODE], env=env, check=True, capture_output=True, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return report


def _fresh_home(source: Path, home: Path) -> Path:
    """A home holding a copy of ``source``'s landing files and nothing else."""
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(source / "landing", home / "landing")
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="disk and S3 ingests each")
    parser.add_argument("--keep", type=Path, help="keep the working folder here")
    args = parser.parse_args()
    with work_folder("agentops-bench-s3-", args.keep) as work, start_local_s3() as server:
        print(
            f"Ingest to S3 (moto on {server.endpoint}) against local disk, {os.cpu_count()} "
            f"cores, load {os.getloadavg()[0]:.1f}, work folder {work}"
        )
        source = work / "source"
        events = _simulate(source, args.events)
        print(f"  simulated fleet: 100 agents x 7 days, {events:,} events (JSONL landing files)")
        disk, s3, server_cpu = [], [], []
        for n in range(args.rounds):
            disk.append(_ingest(_fresh_home(source, work / "disk"), {}))
            used = _server_cpu(server)
            s3_env = server.env(prefix=f"bench-{n}")
            s3.append(_ingest(_fresh_home(source, work / "s3"), s3_env))
            server_cpu.append(_server_cpu(server) - used)
            assert s3[-1]["new"] == disk[-1]["new"], "the two lakes must hold the same rows"
        records = disk[0]["records"]
        disk_rate = statistics.median(r["records"] / r["seconds"] for r in disk)
        s3_rate = statistics.median(r["records"] / r["seconds"] for r in s3)
        per_million = 1e6 / records
        row(f"ingest {records:,.0f} events -> local disk", f"{disk_rate:,.0f} ev/s", "", None)
        row(
            "  ingest process CPU per 1M events",
            f"{statistics.median(r['cpu'] for r in disk) * per_million:.1f} s",
            "",
            None,
        )
        row(f"ingest {records:,.0f} events -> S3 (moto)", f"{s3_rate:,.0f} ev/s", "", None)
        row(
            "  ingest process CPU per 1M events",
            f"{statistics.median(r['cpu'] for r in s3) * per_million:.1f} s",
            "",
            None,
        )
        row(
            "  S3 server CPU per 1M events",
            f"{statistics.median(server_cpu) * per_million:.1f} s",
            "(same 2 cores)",
            None,
        )
        ratio = s3_rate / disk_rate
        row("ratio S3 / disk (events/s)", f"{ratio:.2f}x", "no target", None)
        print(f"  rounds: {args.rounds} each, medians; load now {os.getloadavg()[0]:.1f}")
        print(
            f"VERDICT ingest to S3 vs local disk: {s3_rate:,.0f} vs {disk_rate:,.0f} events/s "
            f"= {ratio:.2f}x; no target in the issue; reported"
        )


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"  bench took {time.perf_counter() - started:.0f} s")
