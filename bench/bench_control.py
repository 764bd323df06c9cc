"""Control benchmarks: evaluating the autonomy states of 10,000 agents, and no flapping.

The fleet is synthetic, seeded (`--seed`): 10,000 agents (`--agents`) spread evenly over the
simulator's 6 agent types, 60 days from 2026-10-01, and evidence written, in their own schemas,
to the four Delta tables the control layer reads (partitioned by day like the real ones):
- behavior_anomalies: each day 1% of the agents have 1 to 3 anomalous cycles, 5% of those an
  action never seen (critical); 30 rogue agents have, for 8 to 14 days, critical anomalies on
  each day with probability 1/2 (intermittent, so hysteresis matters);
- drift_findings: each type-day a type-wide warning on a random metric with probability 0.3,
  20 agent-level warnings a day; two type-wide incidents of critical confidence/success_rate
  drift (days 15-25, and 53-60 so that a sixth of the fleet is restricted on the last day),
  each day of them with probability 0.6 (always their first and last); critical cost drift
  of a third type (no rule reads it);
- capability_violations: 25 agents with violations on one day, 15 on 2 to 4 days within 10;
- budget_compliance: a day and a month budget per type and day, day budgets warning with
  probability 0.1 and breached with 0.02, one type breaching every other day of days 30-36.
agent_events holds one event per agent and day (the columns `known_agents` reads, the rest
null), so the 10,000 agents are known.

1. Speed. The evidence is read once (`read_evidence`, timed apart) over the window
   `refresh_autonomy` reads; then `evaluate(evidence, policy, last day, agents=<10,000
   pairs>)` with the shipped `policies/autonomy.yaml` is timed whole, 3 times. Target: under
   5 s, the slowest of the 3. `refresh_autonomy` of the last day is then timed end to end on
   the home (policy, evidence read, known agents, evaluation, autonomy_state rewritten,
   history and ledger appended, control file written): a first run (every restriction is a
   change) and a second (nothing changes); held to the same 5 s, and its states must be the
   ones `evaluate` gave.
2. No flapping. `evaluate` of every one of the 60 days in turn, each given the evidence
   refresh would read then (days up to that day), with the shipped policy and with a naive one
   (every rule's `quiet_days` set to 0). A subject's state changes on a day when it differs
   from the day before (normal before the first day). Independently of the library, the bench
   computes for each rule and subject the days it fires (its evidence that day, and on
   `min_days` distinct days of the `window_days` ending then) and the days its hold expires
   (the last firing + `quiet_days` + 1, with no firing in between); an agent's explaining days
   are its own and its type's. A change on any other day is unexplained. Target: 0
   unexplained changes with the shipped policy. Printed: changes per agent (max, mean),
   changes beside explaining days, and the naive policy's changes on the same evidence (and
   how many of those the shipped rules would not explain: proof that the check can fail).

    python bench/bench_control.py [--keep DIR] [--agents 10000] [--seed 7]
                                  [--flap-agents 10000] [--skip-flapping]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

import polars as pl
from _report import row as _row
from _report import work_folder

from agentops_assets.control.evidence import EVIDENCE_SCHEMA, read_evidence
from agentops_assets.control.policy import AutonomyPolicy, Rule, load_autonomy_policy
from agentops_assets.control.refresh import known_agents, refresh_autonomy
from agentops_assets.control.states import HISTORY_DAYS, evaluate
from agentops_assets.drift.metrics import METRICS
from agentops_assets.drift.tables import (
    ANOMALIES_SCHEMA,
    BEHAVIOR_ANOMALIES,
    DRIFT_FINDINGS,
    FINDINGS_SCHEMA,
)
from agentops_assets.finops.compliance import COMPLIANCE_SCHEMA
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.capabilities import VIOLATION_SCHEMA
from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS
from agentops_assets.simulator.agent_types import AGENT_TYPES
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS, EVENT_SCHEMA

POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "autonomy.yaml"
START = date(2026, 10, 1)
DAYS = 60
LAST = START + timedelta(days=DAYS - 1)
TYPES = [t.name for t in AGENT_TYPES]
TARGET_S = 5.0
ROGUES, ONE_DAY_VIOLATORS, REPEAT_VIOLATORS = 30, 25, 15
DRIFT_INCIDENTS = ((1, 14, 24), (3, 52, 59))  # (type index, first day, last day), 0-based days
Subject = tuple[str, str | None]
row = partial(_row, width=58)


def _day(index: int) -> date:
    return START + timedelta(days=index)


def _agents(count: int) -> list[tuple[str, str]]:
    return [(TYPES[i % len(TYPES)], f"agent-{i:05d}") for i in range(count)]


def _anomalies(rng: random.Random, agents: list[tuple[str, str]]) -> pl.DataFrame:
    rows = []

    def add(d: int, agent_type: str, agent_id: str, critical: bool) -> None:
        n = len(rows)
        at = datetime.combine(_day(d), datetime.min.time(), UTC) + timedelta(seconds=n % 86_400)
        unseen = ["payments.refund"] if critical else []
        reason = "action payments.refund never seen" if critical else "34 tool calls (p99: 4)"
        rows.append((_day(d), f"tr-{n:07d}", agent_id, agent_type, at, rng.random(), 0, reason,
                     unseen))  # fmt: skip

    for d in range(DAYS):
        for agent_type, agent_id in rng.sample(agents, len(agents) // 100):
            for _ in range(rng.randint(1, 3)):
                add(d, agent_type, agent_id, rng.random() < 0.05)
    for agent_type, agent_id in rng.sample(agents, ROGUES):
        first = rng.randrange(DAYS - 8)
        for d in range(first, min(DAYS, first + rng.randint(8, 14))):
            if d == first or rng.random() < 0.5:
                add(d, agent_type, agent_id, True)
    frame = pl.DataFrame(rows, schema=ANOMALIES_SCHEMA, orient="row")
    return frame.with_columns(
        pl.col("score").rank("ordinal", descending=True).over("day").cast(pl.Int64).alias("rank")
    )


def _drift(rng: random.Random, agents: list[tuple[str, str]]) -> pl.DataFrame:
    rows = []
    metrics = list(METRICS)

    def add(d: int, agent_type: str, agent_id: str | None, metric: str, severity: str) -> None:
        change = rng.uniform(10, 60) * (1 if severity == "critical" else 0.3)
        who = agent_id or f"{agent_type} (type-wide)"
        rows.append((_day(d), agent_type, agent_id, metric, 0.8, 0.8 * (1 - change / 100),
                     -change, "ks", 0.3, 1e-4, 0.6, severity,
                     f"{who}: {metric} moved {change:.0f}%",
                     f"drift-{d}-{agent_type}-{agent_id}-{metric}"))  # fmt: skip

    for d in range(DAYS):
        for agent_type in TYPES:
            if rng.random() < 0.3:
                add(d, agent_type, None, rng.choice(metrics[2:]), "warning")
        for agent_type, agent_id in rng.sample(agents, 20):
            add(d, agent_type, agent_id, rng.choice(metrics), "warning")
    for index, first, last in DRIFT_INCIDENTS:
        for d in range(first, last + 1):
            if d in (first, last) or rng.random() < 0.6:
                for metric in rng.sample(["confidence", "success_rate"], rng.randint(1, 2)):
                    add(d, TYPES[index], None, metric, "critical")
    for d in range(25, 31):
        add(d, TYPES[5], None, "cost_per_cycle", "critical")
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA, orient="row")


def _violations(rng: random.Random, agents: list[tuple[str, str]]) -> pl.DataFrame:
    rows = []
    chosen = rng.sample(agents, ONE_DAY_VIOLATORS + REPEAT_VIOLATORS)
    for n, (agent_type, agent_id) in enumerate(chosen):
        first = rng.randrange(DAYS - 10)
        days = (
            [first]
            if n < ONE_DAY_VIOLATORS
            else sorted({first, *rng.sample(range(first + 1, first + 10), rng.randint(1, 3))})
        )
        for d in days:
            for _ in range(rng.randint(1, 3)):
                event = f"ev-{len(rows):06d}"
                rows.append((_day(d), event, f"tr-{event}", agent_id, agent_type,
                             "erp.post_journal", "tool not in the registry"))  # fmt: skip
    return pl.DataFrame(rows, schema=VIOLATION_SCHEMA, orient="row")


def _budgets(rng: random.Random) -> pl.DataFrame:
    rows = []
    evaluated = datetime.combine(LAST, datetime.min.time(), UTC)
    for d in range(DAYS):
        day = _day(d)
        for index, agent_type in enumerate(TYPES):
            draw = rng.random()
            status = "breach" if draw < 0.02 else "warning" if draw < 0.12 else "ok"
            if index == 2 and 30 <= d <= 36 and d % 2 == 0:
                status = "breach"
            month = "warning" if day.day >= 20 and index % 2 else "ok"
            for period, state, cap in (("day", status, 100.0), ("month", month, 2500.0)):
                pct = {"ok": 0.5, "warning": 0.85, "breach": 1.1}[state]
                start = day if period == "day" else day.replace(day=1)
                rows.append((day, f"{agent_type}-{period}", agent_type, None, None, period,
                             start, day, cap * pct, cap, 0.8, pct, cap * pct, cap * pct, state,
                             f"{agent_type} {period} budget {pct:.0%} of cap",
                             evaluated))  # fmt: skip
    return pl.DataFrame(rows, schema=COMPLIANCE_SCHEMA, orient="row")


def _events(agents: list[tuple[str, str]]) -> pl.DataFrame:
    """One event per agent and day, the other columns of agent_events null."""
    frame = pl.DataFrame(agents, schema={"agent_type": pl.String, "agent_id": pl.String},
                         orient="row")  # fmt: skip
    days = pl.DataFrame({"event_date": [_day(d) for d in range(DAYS)]})
    frame = frame.join(days, how="cross").with_columns(
        pl.format("ev-{}-{}", "agent_id", "event_date").alias("event_id"),
        pl.format("tr-{}-{}", "agent_id", "event_date").alias("trace_id"),
        pl.col("event_date").cast(pl.Datetime("us", "UTC")).alias("ts"),
        pl.lit("reasoning").alias("kind"),
    )
    return frame.select(
        pl.col(name) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in EVENT_SCHEMA.items()
    ).cast(dict(EVENT_SCHEMA))


def _home(work: Path, agents: list[tuple[str, str]], seed: int) -> tuple[Paths, dict[str, int]]:
    """A home whose lake holds the synthetic evidence and agent events."""
    rng = random.Random(seed)
    paths = Paths.from_env(work / "home")
    tables = {
        BEHAVIOR_ANOMALIES: _anomalies(rng, agents),
        DRIFT_FINDINGS: _drift(rng, agents),
        CAPABILITY_VIOLATIONS: _violations(rng, agents),
        BUDGET_COMPLIANCE: _budgets(rng),
    }
    for name, frame in tables.items():
        lake.replace_range(paths.table_uri(name), frame, column="day", first=START, last=LAST)
    events = _events(agents)
    lake.append(paths.table_uri(AGENT_EVENTS), events, partition_by=["event_date"])
    return paths, {name: frame.height for name, frame in tables.items()} | {
        AGENT_EVENTS: events.height
    }


def _lookback(policy: AutonomyPolicy) -> int:
    """Days of evidence before the evaluated one that refresh_autonomy reads."""
    return HISTORY_DAYS + max((r.window_days for r in policy.rules), default=1)


def _speed(paths: Paths, agents: list[tuple[str, str]], policy: AutonomyPolicy) -> pl.DataFrame:
    started = time.perf_counter()
    evidence = read_evidence(paths, LAST - timedelta(days=_lookback(policy)), LAST)
    read_s = time.perf_counter() - started
    row("read_evidence (not in the target)", f"{read_s:.2f} s", f"{evidence.height:,} rows", None)
    assert evidence.schema == EVIDENCE_SCHEMA
    times = []
    for _ in range(3):
        started = time.perf_counter()
        states = evaluate(evidence, policy, LAST, agents=agents)
        times.append(time.perf_counter() - started)
    row(f"evaluate {LAST}, {len(agents):,} agents, slowest of 3", f"{max(times):.2f} s",
        f"< {TARGET_S:.0f} s", max(times) < TARGET_S)  # fmt: skip
    row("  fastest of 3", f"{min(times):.2f} s", f"{states.height:,} rows", None)
    counts = states.group_by(pl.col("agent_id").is_null().alias("type"), "state").len()
    for is_type, label in ((True, "types"), (False, "agents")):
        shown = counts.filter(pl.col("type") == is_type).sort("state")
        row(f"  {label} by state on {LAST}",
            ", ".join(f"{s} {n}" for _, s, n in shown.iter_rows()), "", None)  # fmt: skip
    now = datetime.combine(LAST, datetime.max.time(), UTC)
    for label in ("1st run, all restrictions new", "2nd run, no change"):
        started = time.perf_counter()
        update = refresh_autonomy(paths, LAST, now=now)
        seconds = time.perf_counter() - started
        row(f"refresh_autonomy end to end, {label}", f"{seconds:.2f} s",
            f"< {TARGET_S:.0f} s ({update.changes.height:,} changes)",
            seconds < TARGET_S)  # fmt: skip
    row("  its states are those evaluate gave", f"{update.states.equals(states)}", "True",
        update.states.equals(states))  # fmt: skip
    started = time.perf_counter()
    known = known_agents(paths, LAST)
    row("  known_agents alone (a part of it)", f"{time.perf_counter() - started:.2f} s",
        f"{len(known):,} agents", None)  # fmt: skip
    return evidence


def _fires(evidence: pl.DataFrame, rule: Rule) -> dict[Subject, set[date]]:
    """The days ``rule`` fires on, per subject, computed here rather than by the library."""
    wanted = pl.col("source") == rule.source
    for column, values in (("severity", rule.severity), ("kind", rule.metrics or rule.periods)):
        if values is not None:
            wanted &= pl.col(column).is_in(list(values))
    level = (
        pl.col("agent_id").is_not_null() if rule.scope == "agent" else pl.col("agent_id").is_null()
    )
    seen: dict[Subject, set[date]] = defaultdict(set)
    matched = evidence.filter(wanted & level & pl.col("agent_type").is_not_null())
    for agent_type, agent_id, day in matched.select("agent_type", "agent_id", "day").iter_rows():
        seen[(agent_type, agent_id)].add(day)
    window = timedelta(days=rule.window_days - 1)
    return {
        subject: {d for d in days if sum(d - window <= s <= d for s in days) >= rule.min_days}
        for subject, days in seen.items()
    }


def _explaining(evidence: pl.DataFrame, policy: AutonomyPolicy) -> dict[Subject, set[date]]:
    """Per subject with evidence, the days a rule fires for it or a hold of its expires."""
    days: dict[Subject, set[date]] = defaultdict(set)
    for rule in policy.rules:
        for subject, fired in _fires(evidence, rule).items():
            hold = timedelta(days=rule.quiet_days + 1)
            expired = {f + hold for f in fired if not any(f < g <= f + hold for g in fired)}
            days[subject] |= fired | expired
    return days


def _states_by_day(
    evidence: pl.DataFrame, policy: AutonomyPolicy, agents: list[tuple[str, str]]
) -> tuple[pl.DataFrame, float]:
    """Each day's evaluation, given the evidence refresh_autonomy would read that day."""
    frames, seconds = [], 0.0
    for d in range(DAYS):
        day = _day(d)
        known = evidence.filter(pl.col("day").is_between(day - timedelta(days=_lookback(policy)),
                                                         day))  # fmt: skip
        started = time.perf_counter()
        states = evaluate(known, policy, day, agents=agents)
        seconds += time.perf_counter() - started
        frames.append(states.select("agent_type", "agent_id", "state", pl.lit(day).alias("day")))
    return pl.concat(frames), seconds


def _changes(states: pl.DataFrame) -> pl.DataFrame:
    """Rows of a subject's state differing from its state the day before (normal at first)."""
    subject = ["agent_type", "agent_id"]
    before = pl.col("state").shift(1).over(subject, order_by="day").fill_null("normal")
    return states.filter(pl.col("state") != before).select(*subject, "day", "state")


def _reasons(explained: dict[Subject, set[date]], subject: Subject) -> set[date]:
    """The days that explain a change of ``subject``: its own, and its type's for an agent."""
    days = explained.get(subject, set())
    if subject[1] is not None:
        days = days | explained.get((subject[0], None), set())
    return days


def _unexplained(changes: pl.DataFrame, explained: dict[Subject, set[date]]) -> list[tuple]:
    return [
        (agent_type, agent_id, day, state)
        for agent_type, agent_id, day, state in changes.iter_rows()
        if day not in _reasons(explained, (agent_type, agent_id))
    ]


def _per_agent(changes: pl.DataFrame, agent_ids: list[str]) -> pl.Series:
    """Changes of each agent of ``agent_ids`` (0 for one that never changed)."""
    counts = changes.filter(pl.col("agent_id").is_not_null()).group_by("agent_id").len()
    return (
        pl.DataFrame({"agent_id": agent_ids})
        .join(counts, on="agent_id", how="left")
        .fill_null(0)["len"]
    )


def _flapping(
    evidence: pl.DataFrame, policy: AutonomyPolicy, agents: list[tuple[str, str]]
) -> None:
    print(f"No flapping: evaluate each of {DAYS} days, {len(agents):,} agents")
    naive = AutonomyPolicy(
        rules=tuple(r.model_copy(update={"quiet_days": 0}) for r in policy.rules)
    )
    evidence = evidence.filter(pl.col("day") <= LAST)
    explained = _explaining(evidence, policy)
    all_ids = [a for _, a in agents]
    own_ids = [a for t, a in agents if (t, a) in explained]
    subjects = {(t, None) for t, _ in agents} | set(agents)
    allowed = sum(
        sum(START <= d <= LAST for d in _reasons(explained, subject)) for subject in subjects
    )
    for label, rules in (("shipped policy", policy), ("naive policy (quiet_days 0)", naive)):
        states, seconds = _states_by_day(evidence, rules, agents)
        changes = _changes(states)
        per_agent, own = _per_agent(changes, all_ids), _per_agent(changes, own_ids)
        types = changes.filter(pl.col("agent_id").is_null()).group_by("agent_type").len()
        print(f" {label}: {DAYS} evaluations in {seconds:.1f} s")
        row("  state changes, agents / types",
            f"{per_agent.sum():,} / {types['len'].sum():,}", "", None)  # fmt: skip
        row("  changes per agent, max / mean",
            f"{per_agent.max()} / {per_agent.mean():.2f}",
            f"{(per_agent > 0).sum():,} agents changed", None)  # fmt: skip
        row("  of agents with own evidence firing, max / mean",
            f"{own.max()} / {own.mean():.2f}", f"{own.len():,} such agents", None)  # fmt: skip
        row("  changes per type, max", f"{types['len'].max() or 0}", "", None)
        unexplained = _unexplained(changes, explained)
        if rules is naive:
            # The check can fail: without holds, relaxing the day after is unexplained.
            row("  changes unexplained by the shipped rules", f"{len(unexplained):,}",
                "shown: the check can fail", None)  # fmt: skip
            continue
        row("  changes / days their evidence allows one", f"{changes.height:,} / {allowed:,}",
            "changes <= allowed", changes.height <= allowed)  # fmt: skip
        row("  unexplained changes", f"{len(unexplained)}", "0", not unexplained)
        for found in unexplained[:5]:
            print(f"      {found}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the working folder (home) here")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--flap-agents", type=int, help="agents in the flapping test (all)")
    parser.add_argument("--skip-flapping", action="store_true")
    args = parser.parse_args()
    policy = load_autonomy_policy(POLICY_FILE)
    agents = _agents(args.agents)
    with work_folder("agentops-bench-control-", args.keep) as work:
        print(f"Control benchmarks on {os.cpu_count()} cores, work folder {work}")
        started = time.perf_counter()
        paths, rows = _home(work, agents, args.seed)
        print(f"Synthetic home, {len(agents):,} agents x {DAYS} days, built in "
              f"{time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{name} {n:,}" for name, n in rows.items()))  # fmt: skip
        evidence = _speed(paths, agents, policy)
        if not args.skip_flapping:
            flap = agents[: args.flap_agents] if args.flap_agents else agents
            kept = {a for _, a in flap}
            evidence = evidence.filter(
                pl.col("agent_id").is_null() | pl.col("agent_id").is_in(kept)
            )
            _flapping(evidence, policy, flap)


if __name__ == "__main__":
    main()
