"""Cognitive FinOps benchmarks: every FinOps table over 10 M events, one day's refresh, prices
against genai-prices, and the simulated cost spike caught by the shipped budgets.

The 10 M-event table is a simulated week of a 100-agent fleet, ingested, then copied week
after week (ids made unique per copy, timestamps shifted) until it holds nine weeks.

    python bench/bench_finops.py [--events 10000000] [--weeks 9] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
from _report import holds, row, run_child, shared_home, work_folder
from genai_prices import Usage, calc_price

from agentops_assets.finops.compliance import compliance_findings
from agentops_assets.finops.refresh import refresh_all
from agentops_assets.finops.tables import BUDGET_COMPLIANCE, EVENT_COSTS
from agentops_assets.simulator import simulate
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.schema import AGENT_EVENTS

EVENTS_PER_CYCLE = 12.4  # the simulator's mean events per reasoning cycle, measured
REFRESH_CODE = """
import json, sys, time
from datetime import date
from agentops_assets.storage.config import Paths
from agentops_assets.finops import refresh
first, last = date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2])
paths, steps = Paths.from_env(), {}
for name in ("event_costs", "reasoning_cycles", "agent_daily_metrics", "agent_type_roi",
             "budget_compliance"):
    started = time.perf_counter()
    rows = getattr(refresh, "refresh_" + name)(paths, first, last).height
    steps[name] = [time.perf_counter() - started, rows]
print(json.dumps(steps))
"""
DAGSTER_CODE = """
import sys, time
from agentops_assets.cli.runner import prepare_dagster_home
from agentops_assets.storage.config import Paths
prepare_dagster_home(Paths.from_env())
import dagster as dg
from agentops_assets.definitions import defs
job = defs.resolve_job_def("finops_job")
with dg.DagsterInstance.get() as instance:
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, partition_key=sys.argv[1])
    print(time.perf_counter() - started, result.success)
"""


def _fleet(
    home: Path, *, agents: int, start: date, seed: int, incidents=None, cycles: int = 60
) -> Paths:
    paths = Paths.from_env(home)
    simulate(
        paths.landing, paths.simulator, agents=agents, days=7, seed=seed, start=start,
        fmt="jsonl", incidents=incidents, cycles_per_agent_day=cycles,
    )  # fmt: skip
    ingest_landing(paths)
    return paths


def _build(home: Path, events: int, weeks: int) -> tuple[Paths, date, date, int]:
    """About ``events`` events over ``weeks`` weeks: one simulated week, then shifted copies."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=7 * weeks)
    cycles = max(1, round(events / weeks / (100 * 7 * EVENTS_PER_CYCLE)))
    paths = _fleet(home, agents=100, start=first, seed=7, cycles=cycles)
    uri = paths.table_uri(AGENT_EVENTS)
    week = pl.read_delta(uri)
    for copy in range(1, weeks):
        shift = timedelta(days=7 * copy)
        suffix = f"-w{copy}"
        lake.append(
            uri,
            week.with_columns(
                pl.col("event_id", "trace_id") + suffix,
                pl.col("parent_id") + suffix,
                pl.col("ts") + shift,
                pl.col("event_date") + shift,
            ),
            partition_by=["event_date"],
        )
    total = pl.scan_delta(uri).select(pl.len()).collect().item()
    return paths, first, first + timedelta(days=7 * weeks - 1), total


def _reuse(home: Path) -> tuple[Paths, date, date, int]:
    """The home an earlier run built (``$AGENTOPS_BENCH_HOME``): its days and event count."""
    paths = Paths.from_env(home)
    first, last, events = (
        pl.scan_delta(paths.table_uri(AGENT_EVENTS))
        .select(pl.col("event_date").min(), pl.col("event_date").max().alias("last"), pl.len())
        .collect()
        .row(0)
    )
    return paths, first, last, events


def _price_agreement(paths: Paths, sample: int = 2_000) -> tuple[int, float]:
    """Rows priced from genai-prices, re-priced one by one with calc_price: max difference."""
    costs = (
        pl.scan_delta(paths.table_uri(EVENT_COSTS))
        .filter(pl.col("priced_cost_usd").is_not_null() & pl.col("reported_cost_usd").is_null())
        .filter(pl.col("price_model").is_not_null())
        .collect()
    )
    rows = costs.sample(min(sample, costs.height), seed=1).iter_rows(named=True)
    worst = 0.0
    checked = 0
    for r in rows:
        usage = Usage(
            input_tokens=r["input_tokens"] or 0,
            output_tokens=r["output_tokens"] or 0,
            cache_read_tokens=r["cache_read_tokens"] or 0,
            cache_write_tokens=r["cache_write_tokens"] or 0,
            output_reasoning_tokens=r["reasoning_tokens"] or 0,
        )
        expected = calc_price(
            usage, r["model"], provider_id=r["provider_id"], genai_request_timestamp=r["ts"]
        ).total_price
        worst = max(worst, abs(float(expected) - r["priced_cost_usd"]))
        checked += 1
    return checked, worst


def _spike(work: Path, seeds: list[int]) -> None:
    """The shipped budgets flag the injected cost spike on its day, and nothing on a clean fleet."""
    start = datetime.now(UTC).date() - timedelta(days=7)
    last = start + timedelta(days=6)
    for seed in seeds:
        paths = _fleet(work / f"spike-{seed}", agents=20, start=start, seed=seed)
        refresh_all(paths, start, last)
        truth = json.loads((paths.simulator / "incidents.json").read_text())
        spike = next(i for i in truth if i["name"] == "cost_spike")
        findings = compliance_findings(pl.read_delta(paths.table_uri(BUDGET_COMPLIANCE)))
        breaches = findings.filter(pl.col("status") == "breach")
        hit = breaches.filter(
            (pl.col("day") == date.fromisoformat(spike["day"]))
            & (pl.col("agent_type") == spike["agent_type"])
            & (pl.col("period") == "day")
        )
        others = breaches.height - hit.height
        row(
            f"cost spike seed {seed}: {spike['agent_type']} on {spike['day']}",
            "breach" if hit.height else "missed",
            "breach that day",
            hit.height > 0,
        )
        row(
            "  other breaches / warnings",
            f"{others} / {findings.height - breaches.height}",
            "",
            None,
        )
        clean = _fleet(work / f"clean-{seed}", agents=20, start=start, seed=seed, incidents=[])
        refresh_all(clean, start, last)
        fired = compliance_findings(pl.read_delta(clean.table_uri(BUDGET_COMPLIANCE))).height
        row("  same fleet without incidents: findings", f"{fired}", "0", fired == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--weeks", type=int, default=9, help="weeks of a 100-agent fleet")
    parser.add_argument("--keep", type=Path, help="keep the working folder here")
    args = parser.parse_args()
    with work_folder("agentops-bench-finops-", args.keep) as work:
        print(f"FinOps benchmarks on {os.cpu_count()} cores, work folder {work}")
        shared = shared_home()
        if holds(shared, AGENT_EVENTS):
            paths, first, last, events = _reuse(shared)
            row("agent_events reused", f"{events:,} ev", f"{first} .. {last}", None)
        else:
            started = time.perf_counter()
            paths, first, last, events = _build(shared or work / "fleet", args.events, args.weeks)
            built = time.perf_counter() - started
            row("agent_events built", f"{events:,} ev", f"{first} .. {last}", None)
            row("  simulate + ingest + copy", f"{built:.1f} s", "", None)

        out, peak_mb = run_child(paths.home, REFRESH_CODE, first.isoformat(), last.isoformat())
        steps = json.loads(out)
        total = sum(seconds for seconds, _ in steps.values())
        row(f"all FinOps tables over {events / 1e6:.1f} M events", f"{total:.1f} s", "< 60 s",
            total < 60)  # fmt: skip
        for name, (seconds, rows) in steps.items():
            row(f"  {name}", f"{seconds:.1f} s", f"{rows:,} rows", None)
        row("  peak memory of the refresh process", f"{peak_mb:,.0f} MB", "< 6,000 MB",
            peak_mb < 6000)  # fmt: skip

        out, _ = run_child(paths.home, REFRESH_CODE, last.isoformat(), last.isoformat())
        one_day = sum(seconds for seconds, _ in json.loads(out).values())
        row(f"incremental refresh of {last}", f"{one_day:.1f} s", "< 5 s", one_day < 5)
        out, _ = run_child(paths.home, DAGSTER_CODE, last.isoformat())
        seconds, ok = out.split()
        row("  same through Dagster (run incl. checks)", f"{float(seconds):.1f} s", ok, None)

        checked, worst = _price_agreement(paths)
        row(f"prices vs genai-prices calc_price ({checked:,} calls)", f"max diff ${worst:.2e}",
            "< $0.01", worst < 0.01)  # fmt: skip

        _spike(work, seeds=[42, 7, 3])


if __name__ == "__main__":
    main()
