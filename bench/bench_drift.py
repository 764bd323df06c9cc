"""Drift benchmarks: incidents of the simulator's ground truth found (or not), false findings on
fleets without incidents, speed over the 10 M-event FinOps bench data, and Evidently beside us.

1. Detection. For each seed, a fleet of 40 agents over 24 days (60 cycles per agent and day,
   from 2026-10-01) with every incident, none before day 8 (`first_incident_day=8`: day 7 is the
   first with the policy's 7 days of history), and the same fleet without incidents. Baselines,
   drift (`detect_drift` with the shipped `policies/drift.yaml`) and anomalies
   (`detect_anomalies`) run over all 24 days. An incident is found on the first day, on or after
   its start, that one of these shows it (that day minus its start is the delay):
   - confidence_drift: a finding on `confidence` or `success_rate` of its agent type (type-wide
     or one of its agents); cost_spike: `cost_per_cycle`, `reprompt_rate` or
     `tokens_per_cycle` of its type; outage: `tool_error_rate` or `retry_rate` of an agent that
     uses the failing tool, or type-wide of such an agent's type;
   - corrupted_context: `context_defect_rate` of the victim agent (a type-wide finding of its
     type is shown as such, and counts too);
   - rogue_agent: the rogue's cycles that called the unusual tools are the top-ranked
     `behavior_anomalies` of their day (ranks 1..k for k such cycles); the delay is 0 then.
   - wrong_lesson is a memory incident (a stored wrong lesson, later corrected): printed with
     any finding or anomaly of the learner (or type-wide of its type) within a day, but not
     held to the target, which it would only join if something found it.
   Target: every behaviour incident found within one day of its start (delay 0 or 1). On the
   fleets without incidents every drift finding is false: at most 1 per 100 type-days, a
   type-day being an agent type on a day with 7 days of history (agent-level findings count
   too). The thresholds were set looking at seeds 1 and 2 only: those are reported apart
   ("seen in tuning") from seeds 3 to 7 ("never seen").
2. Speed. Baselines + drift + anomalies over every day of the 10 M-event home that
   bench_finops.py builds (`--home DIR`; without it `$AGENTOPS_BENCH_HOME` when that holds
   reasoning_cycles, as under `make bench`, else one is built), read from the lake in a child
   process: under 30 s and 4 GB peak RSS; one day's partition (the last day, reading its 14-day
   window) under 3 s, best of 3.
3. Evidently 0.7 beside us, on the two fleets of one seed (with and without incidents). For
   every type-day our drift tests, Evidently's `DataDriftPreset` gets the same per-cycle values
   of the four continuous metrics (confidence, time_to_decision, cost_per_cycle,
   tokens_per_cycle): current = that type's cycles of the day, reference = its cycles of the 14
   days before (Evidently uses them all; we sample at most 400 per window day). Evidently picks
   its own test per column (normed Wasserstein >= 0.1 for a reference over 1,000 rows, else
   K-S p < 0.05). Its time is `Dataset.from_pandas` + `Report.run` + reading the result, per
   type-day; the pandas frames are made outside the timing. Ours is one `detect_drift` per fleet
   over its 24 days, which computes more: all ten metrics, for each type and each agent, with
   baselines and the findings' sentences. A type-day drifted for Evidently when any of the four
   columns drifted by its per-column test; for us when a type-wide finding names one of the
   four. Printed: the time ratio (goal: ours 10x faster) and the agreement, per fleet.

    python bench/bench_drift.py [--keep DIR] [--home DIR/fleet] [--seeds 1 2 3 4 5 6 7]
                                [--evidently-seed 3] [--skip-speed] [--skip-evidently]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from _report import holds, row, run_child, shared_home, work_folder

from agentops_assets.drift.anomalies import detect_anomalies, read_inputs
from agentops_assets.drift.detect import detect_drift
from agentops_assets.drift.inputs import read_cycles
from agentops_assets.drift.metrics import CONTINUOUS, METRICS
from agentops_assets.drift.policy import DriftPolicy, load_drift_policy
from agentops_assets.finops.refresh import refresh_all
from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths

POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "drift.yaml"
START = date(2026, 10, 1)
DAYS = 24
LAST = START + timedelta(days=DAYS - 1)
AGENTS = 40
CYCLES = 60
FIRST_INCIDENT_DAY = 8
SEEN_IN_TUNING = (1, 2)
MAX_DELAY = 1
FALSE_PER_100_TARGET = 1.0

# The drift metrics that reveal each behaviour incident; anomalies reveal the rogue agent.
REVEALED_BY = {
    "confidence_drift": ("confidence", "success_rate"),
    "cost_spike": ("cost_per_cycle", "reprompt_rate", "tokens_per_cycle"),
    "outage": ("tool_error_rate", "retry_rate"),
    "corrupted_context": ("context_defect_rate",),
}
MEMORY_INCIDENTS = ("wrong_lesson",)

SPEED_CODE = """
import json, sys, time
from datetime import date, timedelta
from pathlib import Path
from agentops_assets.storage.config import Paths
from agentops_assets.drift.anomalies import detect_anomalies, read_inputs
from agentops_assets.drift.detect import detect_drift
from agentops_assets.drift.inputs import read_cycles
from agentops_assets.drift.policy import load_drift_policy
first, last = date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2])
policy = load_drift_policy(Path(sys.argv[3]))
paths = Paths.from_env()
started = time.perf_counter()
cycles = read_cycles(paths, first - timedelta(days=policy.window_days), last)
read = time.perf_counter() - started
drift = detect_drift(cycles, first, last, policy)
drift_s = time.perf_counter() - started
del cycles
mark = time.perf_counter()
anomalies = detect_anomalies(*read_inputs(paths, first, last), first, last)
anomalies_s = time.perf_counter() - mark
print(json.dumps({
    "seconds": time.perf_counter() - started, "read": read, "drift": drift_s,
    "anomalies": anomalies_s, "baselines_rows": drift.baselines.height,
    "findings": drift.findings.height, "anomaly_rows": anomalies.height,
}))
"""


@dataclass(frozen=True)
class Fleet:
    """One simulated home and what detection made of it."""

    seed: int
    paths: Paths
    incidents: list[dict]
    cycles: pl.DataFrame
    baselines: pl.DataFrame
    findings: pl.DataFrame
    anomalies: pl.DataFrame
    seconds: float


def _home(work: Path, seed: int, *, incidents: bool) -> Paths:
    """The seed's home, built once (``built.json`` marks a finished one) and reused."""
    home = work / f"seed-{seed}-{'incidents' if incidents else 'clean'}"
    paths = Paths.from_env(home)
    if (home / "built.json").exists():
        return paths
    from agentops_assets.telemetry.ingest import ingest_landing

    simulate(
        paths.landing, paths.simulator, agents=AGENTS, days=DAYS, seed=seed, start=START,
        cycles_per_agent_day=CYCLES, incidents=None if incidents else [],
        first_incident_day=FIRST_INCIDENT_DAY,
    )  # fmt: skip
    ingest_landing(paths)
    refresh_all(paths, START, LAST)
    (home / "built.json").write_text(json.dumps({"seed": seed, "incidents": incidents}))
    return paths


def _detect(paths: Paths, seed: int, policy: DriftPolicy) -> Fleet:
    started = time.perf_counter()
    cycles = read_cycles(paths, START, LAST)
    drift = detect_drift(cycles, START, LAST, policy)
    anomalies = detect_anomalies(*read_inputs(paths, START, LAST), START, LAST)
    seconds = time.perf_counter() - started
    truth = json.loads((paths.simulator / "incidents.json").read_text())
    return Fleet(seed, paths, truth, cycles, drift.baselines, drift.findings, anomalies, seconds)


def _type_days(fleet: Fleet, policy: DriftPolicy) -> int:
    """Agent types on days with the policy's minimum history (the days drift can judge)."""
    return (
        fleet.baselines.filter(
            pl.col("agent_id").is_null() & (pl.col("window_days") >= policy.min_history_days)
        )
        .select("day", "agent_type")
        .unique()
        .height
    )


def _scope(incident: dict, types_of: dict[str, str]) -> pl.Expr:
    """Findings about the incident's agent type, or its agents, or (outage) their types."""
    agents = incident.get("agent_ids") or []
    if incident["name"] == "corrupted_context":
        return pl.col("agent_id").is_in(agents) | (
            pl.col("agent_id").is_null() & (pl.col("agent_type") == incident["agent_type"])
        )
    if incident.get("agent_type"):
        return pl.col("agent_type") == incident["agent_type"]
    types = sorted({types_of[a] for a in agents if a in types_of})
    return pl.col("agent_id").is_in(agents) | (
        pl.col("agent_id").is_null() & pl.col("agent_type").is_in(types)
    )


def _who(finding: dict) -> str:
    return finding["agent_id"] or f"{finding['agent_type']} (type-wide)"


def _judge(incident: dict, fleet: Fleet, types_of: dict[str, str]) -> dict:
    """Found or not, the delay, and what shows it (or, when missed, what the tables hold)."""
    name, day = incident["name"], date.fromisoformat(incident["day"])
    target = (
        incident["agent_ids"][0]
        if name in ("corrupted_context", "rogue_agent", *MEMORY_INCIDENTS)
        else (incident.get("agent_type") or f"{len(incident['agent_ids'])} agents")
    )
    result = {"name": name, "day": day, "target": target, "counted": name not in MEMORY_INCIDENTS}
    if name == "rogue_agent":
        return {**result, **_rogue(incident, fleet, day)}
    if name in MEMORY_INCIDENTS:
        agent = incident["agent_ids"][0]
        near = pl.col("day").is_between(day, day + timedelta(days=MAX_DELAY))
        findings = fleet.findings.filter(
            near
            & (
                (pl.col("agent_id") == agent)
                | (pl.col("agent_id").is_null() & (pl.col("agent_type") == incident["agent_type"]))
            )
        )
        anomalies = fleet.anomalies.filter(near & (pl.col("agent_id") == agent))
        if findings.height or anomalies.height:
            first = min([*findings["day"], *anomalies["day"]])
            what = f"{findings.height} findings, {anomalies.height} anomalies"
            return {**result, "delay": (first - day).days, "counted": True, "evidence": what}
        return {**result, "delay": None, "evidence": "nothing in drift or anomalies"}
    metrics = list(REVEALED_BY[name])
    hits = fleet.findings.filter(
        (pl.col("day") >= day) & _scope(incident, types_of) & pl.col("metric").is_in(metrics)
    ).sort("day", pl.col("agent_id").is_null(), descending=[False, name != "corrupted_context"])
    if hits.height:
        first = hits.row(0, named=True)
        same_day = hits.filter(pl.col("day") == first["day"])
        scopes = ", ".join(sorted({f"{_who(r)} {r['metric']}" for r in same_day.to_dicts()}))
        evidence = f"{first['detail']} [{same_day.height} matching: {scopes[:160]}]"
        return {**result, "delay": (first["day"] - day).days, "evidence": evidence}
    shown = fleet.baselines.filter(
        pl.col("day").is_between(day, day + timedelta(days=MAX_DELAY))
        & _scope(incident, types_of)
        & pl.col("metric").is_in(metrics)
        & (pl.col("agent_id").is_null() | pl.col("agent_id").is_in(incident["agent_ids"]))
    ).sort("day", "agent_id", "metric", nulls_last=False)
    values = "; ".join(
        f"{r['day']} {_who(r)} {r['metric']} {r['baseline_value']:.4g} -> {r['current_value']:.4g}"
        f" (n={r['current_n']})"
        for r in shown.head(6).to_dicts()
        if r["baseline_value"] is not None and r["current_value"] is not None
    )
    return {**result, "delay": None, "evidence": f"no finding; baselines: {values}"}


def _unexplained(fleet: Fleet, types_of: dict[str, str]) -> pl.DataFrame:
    """Findings about none of the incidents' agents (or their types) from the incident's first
    day to the day after its end: incidents have side effects, so this is shown, not judged."""
    explained = pl.lit(False)
    for incident in fleet.incidents:
        agents = incident.get("agent_ids") or []
        types = {types_of[a] for a in agents if a in types_of} | {incident.get("agent_type")}
        end = date.fromisoformat(incident["end"][:10]) + timedelta(days=MAX_DELAY)
        explained = explained | (
            pl.col("day").is_between(date.fromisoformat(incident["day"]), end)
            & (
                pl.col("agent_id").is_in(agents)
                | (
                    pl.col("agent_id").is_null()
                    & pl.col("agent_type").is_in(sorted(types - {None}))
                )
            )
        )
    return fleet.findings.filter(~explained)


def _rogue(incident: dict, fleet: Fleet, day: date) -> dict:
    agent, tools = incident["agent_ids"][0], incident["details"]["tools"]
    events = pl.scan_delta(fleet.paths.table_uri("agent_events"))
    rogue = set(
        events.filter((pl.col("agent_id") == agent) & pl.col("action").is_in(tools))
        .select("trace_id")
        .unique()
        .collect()["trace_id"]
    )
    that_day = fleet.anomalies.filter(pl.col("day") == day).sort("rank")
    ranks = sorted(that_day.filter(pl.col("trace_id").is_in(list(rogue)))["rank"].to_list())
    top = set(that_day.head(len(rogue))["trace_id"])
    evidence = (
        f"{len(ranks)} of the rogue's {len(rogue)} cycles flagged, ranks {ranks[:8]}; "
        f"{that_day.height} anomalies that day"
    )
    found = bool(rogue) and top == rogue
    return {"delay": 0 if found else None, "evidence": evidence}


def _detection(work: Path, seeds: list[int], policy: DriftPolicy) -> None:
    if not seeds:
        return
    print(
        f"Detection: {AGENTS} agents x {DAYS} days x {CYCLES} cycles per agent-day, incidents "
        f"from day {FIRST_INCIDENT_DAY}; policy {POLICY_FILE.name} as shipped"
    )
    groups = {
        "seen in tuning": [s for s in seeds if s in SEEN_IN_TUNING],
        "never seen": [s for s in seeds if s not in SEEN_IN_TUNING],
    }
    for label, group in groups.items():
        if not group:
            continue
        print(f" seeds {', '.join(map(str, group))} ({label})")
        counted = found = 0
        false_findings = type_days = other_findings = incident_type_days = 0
        for seed in group:
            fleet = _detect(_home(work, seed, incidents=True), seed, policy)
            types_of = dict(fleet.cycles.select("agent_id", "agent_type").unique().iter_rows())
            for incident in fleet.incidents:
                judged = _judge(incident, fleet, types_of)
                delay = judged["delay"]
                ok = delay is not None and delay <= MAX_DELAY
                figure = "missed" if delay is None else f"found, +{delay} d"
                if judged["counted"]:
                    counted += 1
                    found += ok
                name = f"seed {seed} {judged['name']} {judged['day']:%m-%d} {judged['target']}"
                row(name, figure, "within 1 day" if judged["counted"] else "memory: no target",
                    ok if judged["counted"] else None, width=58)  # fmt: skip
                print(f"      {judged['evidence'][:300]}")
            others = _unexplained(fleet, types_of)
            other_findings += others.height
            incident_type_days += _type_days(fleet, policy)
            row(f"seed {seed} with incidents: other findings", f"{others.height}",
                "no target", None, width=58)  # fmt: skip
            for finding in others.head(3).to_dicts():
                print(f"      {finding['severity']}: {finding['detail']}")
            clean = _detect(_home(work, seed, incidents=False), seed, policy)
            days = _type_days(clean, policy)
            false_findings += clean.findings.height
            type_days += days
            scored = clean.cycles.filter(
                pl.col("day") >= START + timedelta(days=policy.min_history_days)
            ).height
            row(f"seed {seed} without incidents: drift findings", f"{clean.findings.height}",
                f"of {days} type-days", None, width=58)  # fmt: skip
            for finding in clean.findings.head(5).to_dicts():
                print(f"      {finding['severity']}: {finding['detail']}")
            row(f"seed {seed} without incidents: anomalies", f"{clean.anomalies.height}",
                f"of {scored:,} cycles", None, width=58)  # fmt: skip
            row("  detection time (incidents / clean fleet)",
                f"{fleet.seconds:.1f} / {clean.seconds:.1f} s", "", None, width=58)  # fmt: skip
        row(f"{label}: behaviour incidents found within 1 day", f"{found} of {counted}",
            "all", found == counted, width=58)  # fmt: skip
        rate = 100 * false_findings / type_days if type_days else 0.0
        row(f"{label}: false findings per 100 type-days",
            f"{rate:.2f} ({false_findings}/{type_days})", "<= 1",
            rate <= FALSE_PER_100_TARGET, width=58)  # fmt: skip
        others = 100 * other_findings / incident_type_days if incident_type_days else 0.0
        row(f"{label}: other findings per 100 type-days (incidents)",
            f"{others:.2f} ({other_findings}/{incident_type_days})", "shown, not judged", None,
            width=58)  # fmt: skip


def _speed(home: Path | None, work: Path) -> None:
    from agentops_assets.finops.tables import REASONING_CYCLES

    if home is None:
        shared = shared_home()
        if holds(shared, REASONING_CYCLES):
            home = shared
        else:
            from bench_finops import _build as build_finops_home

            paths, first, last, _ = build_finops_home(work / "fleet", 10_000_000, 9)
            refresh_all(paths, first, last)
            home = paths.home
    paths = Paths.from_env(home)
    cycles = pl.scan_delta(paths.table_uri(REASONING_CYCLES))
    first, last, n = (
        cycles.select(pl.col("day").min(), pl.col("day").max().alias("last"), pl.len())
        .collect()
        .row(0)
    )
    events = pl.scan_delta(paths.table_uri("agent_events")).select(pl.len()).collect().item()
    print(f"Speed over {home}: {events / 1e6:.1f} M events, {n:,} cycles, {first} .. {last}")
    args = (str(POLICY_FILE),)
    out, peak_mb = run_child(home, SPEED_CODE, first.isoformat(), last.isoformat(), *args)
    full = json.loads(out)
    days = (last - first).days + 1
    row(f"baselines + drift + anomalies, {days} days", f"{full['seconds']:.1f} s", "< 30 s",
        full["seconds"] < 30)  # fmt: skip
    row("  reading the cycles (drift)", f"{full['read']:.1f} s", "", None)
    row("  baselines + drift incl. reading", f"{full['drift']:.1f} s",
        f"{full['baselines_rows']:,} baseline rows", None)  # fmt: skip
    row("  anomalies incl. reading", f"{full['anomalies']:.1f} s",
        f"{full['anomaly_rows']:,} anomalies", None)  # fmt: skip
    row("  drift findings", f"{full['findings']:,}", "", None)
    row("  peak memory of the process", f"{peak_mb:,.0f} MB", "< 4,000 MB", peak_mb < 4000)
    runs = [
        json.loads(run_child(home, SPEED_CODE, last.isoformat(), last.isoformat(), *args)[0])
        for _ in range(3)
    ]
    one = min(runs, key=lambda r: r["seconds"])
    row(f"one day ({last}), best of 3", f"{one['seconds']:.2f} s", "< 3 s", one["seconds"] < 3)
    row("  baselines + drift (of which reading) / anomalies",
        f"{one['drift']:.2f} ({one['read']:.2f}) / {one['anomalies']:.2f} s", "", None)  # fmt: skip


def _evidently_verdicts(snapshot: dict) -> dict[str, bool]:
    """Per column, whether Evidently's own per-column test calls it drifted."""
    verdicts = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method, threshold, value = config["method"], config["threshold"], metric["value"]
        # Tests report a p-value (drift below the threshold), distances a score (drift above).
        verdicts[config["column"]] = (
            value < threshold if "p_value" in method else value >= threshold
        )
    return verdicts


def _evidently(work: Path, seed: int, policy: DriftPolicy) -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    print(f"Evidently DataDriftPreset beside detect_drift, seed {seed}")
    columns = list(CONTINUOUS)
    definition = DataDefinition(numerical_columns=columns)
    ours_s = theirs_s = 0.0
    compared = 0
    for incidents in (True, False):
        paths = _home(work, seed, incidents=incidents)
        cycles = read_cycles(paths, START, LAST)
        started = time.perf_counter()
        drift = detect_drift(cycles, START, LAST, policy)
        ours_s += time.perf_counter() - started
        tested = (
            drift.baselines.filter(
                pl.col("agent_id").is_null()
                & (pl.col("window_days") >= policy.min_history_days)
                & (pl.col("current_n") >= policy.min_cycles_type)
            )
            .select("day", "agent_type")
            .unique()
            .sort("day", "agent_type")
        )
        ours = drift.findings.filter(pl.col("agent_id").is_null() & pl.col("metric").is_in(columns))
        values = cycles.select(
            "day", "agent_type", *(METRICS[c].value.cast(pl.Float64).alias(c) for c in columns)
        )
        confusion = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
        per_column = {name: [0, 0] for name in columns}  # type-days drifted: ours, Evidently
        dataset_drift = 0
        for day, agent_type in tested.iter_rows():
            of_type = values.filter(pl.col("agent_type") == agent_type)
            before = pl.col("day").is_between(day - timedelta(days=policy.window_days),
                                              day - timedelta(days=1))  # fmt: skip
            current = of_type.filter(pl.col("day") == day).select(columns).to_pandas()
            reference = of_type.filter(before).select(columns).to_pandas()
            started = time.perf_counter()
            snapshot = Report([DataDriftPreset()]).run(
                Dataset.from_pandas(current, data_definition=definition),
                Dataset.from_pandas(reference, data_definition=definition),
            )
            verdicts = _evidently_verdicts(snapshot.dict())
            theirs_s += time.perf_counter() - started
            flagged = set(
                ours.filter((pl.col("day") == day) & (pl.col("agent_type") == agent_type))["metric"]
            )
            for name in columns:
                per_column[name][0] += name in flagged
                per_column[name][1] += verdicts.get(name, False)
            dataset_drift += sum(verdicts.values()) >= len(columns) / 2
            confusion[(bool(flagged), any(verdicts.values()))] += 1
        compared += tested.height
        _agreement("with incidents" if incidents else "without incidents (every drift false)",
                   confusion, per_column, dataset_drift)  # fmt: skip
    ratio = theirs_s / ours_s if ours_s else float("inf")
    row(f"time over the {compared} type-days", f"{ours_s:.2f} s / {theirs_s:.1f} s",
        "ours / Evidently", None)  # fmt: skip
    row("  time ratio (Evidently / ours)", f"{ratio:.0f}x", ">= 10x", ratio >= 10)


def _agreement(
    label: str,
    confusion: dict[tuple[bool, bool], int],
    per_column: dict[str, list[int]],
    dataset_drift: int,
) -> None:
    total = sum(confusion.values())
    agree = confusion[(True, True)] + confusion[(False, False)]
    print(f" fleet {label}: {total} type-days")
    row("  agreement on which type-days drifted", f"{agree / total:.0%}" if total else "n/a",
        f"{agree} of {total}", None)  # fmt: skip
    row("  both drift / both none",
        f"{confusion[(True, True)]} / {confusion[(False, False)]}", "", None)  # fmt: skip
    row("  only ours / only Evidently",
        f"{confusion[(True, False)]} / {confusion[(False, True)]}", "", None)  # fmt: skip
    row("  Evidently dataset drift (>= half the columns)", f"{dataset_drift}", "", None)
    for name, (ours_n, theirs_n) in per_column.items():
        row(f"  {name}: type-days drifted", f"{ours_n} / {theirs_n}", "ours / Evidently", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the working folder (homes) here")
    parser.add_argument("--home", type=Path, help="a 10 M-event home (bench_finops.py --keep)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6, 7])
    parser.add_argument("--evidently-seed", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    policy = load_drift_policy(POLICY_FILE)
    with work_folder("agentops-bench-drift-", args.keep) as work:
        print(f"Drift benchmarks on {os.cpu_count()} cores, work folder {work}")
        _detection(work, args.seeds, policy)
        if not args.skip_speed:
            _speed(args.home, work)
        if not args.skip_evidently:
            _evidently(work, args.evidently_seed, policy)


if __name__ == "__main__":
    main()
