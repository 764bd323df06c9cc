"""Policy engine: one decision's latency, back-test throughput, and the fail-closed matrix.

One decision: the shipped policies (``policies/*.rego``) judge varied tool calls of the simulated
fleet's types through ``PolicyBundle.evaluate`` (worker-thread hand-off and timeout included);
p50 and p99 after a warm-up (goal p99 < 5 ms). ``evaluate_many`` over synthetic documents that
repeat (as tool calls do: the same type, tool, zone and amount bucket): actions/s and distinct
evaluations/s (figures, no target). Fail-closed matrix: a syntax error, a runtime error, an
undefined decision, a malformed result and a timeout: each must deny.

Back-test (goal < 60 s for 1 M actions): ``governance.backtest.backtest`` replays the whole
history of the last whole days of a fleet home that hold at least ``--backtest-actions``
``tool_call`` + ``decision`` events (the fewest days from the end that reach it), judged by the
shipped policies and by a stricter candidate (a copy with ``max_failure_rate`` 0.05 and
``min_uses`` 10, in a temporary folder); each distinct document is evaluated once (only the
fields the policies read, per day). The home is ``--home``, else ``$AGENTOPS_BENCH_HOME`` when it
holds agent_events (the 10 M-event fleet bench_finops.py builds under ``make bench``), else one
of the same daily density is built in the work folder (``--weeks-if-built`` weeks, simulated
and ingested as bench_finops.py does, with its FinOps tables). A smaller
``--backtest-actions`` is a quick check (no verdict then); ``--profile`` runs the back-test
under cProfile and prints the 15 functions that take the most time of their own.

Audit ledger: the tamper matrix (``agentops_assets.governance.tampering``) on a ledger of
``--ledger-entries`` entries, one append each: every forgery must be found at its expected entry,
as its expected kind. Then ``verify()`` on a ledger of ``--verify-entries`` entries appended in
batches of ``--verify-batch``: entries checked per second (a figure, no target).

    python bench/bench_governance.py [--decisions 2000] [--actions 200000] [--distinct 2000]
        [--backtest-actions 1000000] [--home DIR/fleet] [--keep DIR] [--weeks-if-built 3]
        [--profile] [--ledger-entries 200] [--verify-entries 100000] [--verify-batch 10000]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import os
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import yaml

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _report import holds, ms, quantile, row, shared_home, timed, work_folder  # noqa: E402

from agentops_assets.governance.backtest import BacktestReport, backtest  # noqa: E402
from agentops_assets.governance.engine import (  # noqa: E402
    PolicyBundle,
    PolicyBundleError,
    default_policy_folder,
)
from agentops_assets.governance.judge import ACTION_KINDS  # noqa: E402
from agentops_assets.governance.ledger import AuditLedger, Entry  # noqa: E402
from agentops_assets.governance.tampering import Outcome, run_matrix  # noqa: E402
from agentops_assets.storage.config import Paths  # noqa: E402
from agentops_assets.telemetry.schema import AGENT_EVENTS  # noqa: E402

ZONES = ("public", "internal", "restricted")
BACKTEST_TARGET_S = 60.0
BACKTEST_TARGET_ACTIONS = 1_000_000
STRICTER = {"max_failure_rate": "0.05", "min_uses": "10"}  # shipped: 0.3 and 20
SHARED_EVENTS, SHARED_WEEKS = 10_000_000, 9  # the shared home of bench_finops.py
LEDGER_KINDS = ("policy_decision", "approval", "rejection", "memory_commit", "memory_rollback")
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ALLOW = '{"decision": "allow", "zone": "green", "reasons": [], "rules": [], "obligations": {}}'
BROKEN = {
    "syntax error": "package agentops.governance\n\nresult := if {\n",
    "runtime error (conflict)": (
        'package agentops.governance\n\nzone := "green"\n\nzone := "red"\n\n'
        'result := {"decision": "allow", "zone": zone}\n'
    ),
    "runtime error (division by zero)": (
        "package agentops.governance\n\nr := 1 / input.zero\n\n"
        'result := {"decision": "allow", "zone": "green", "reasons": [sprintf("%v", [r])]}\n'
    ),
    "undefined decision": "package agentops.governance\n\nother := 1\n",
    "malformed result": 'package agentops.governance\n\nresult := "allow"\n',
    "timeout": (
        "package agentops.governance\n\n"
        "n := count([x | some i in numbers.range(1, 200000); x := i * 2])\n\n"
        f"result := {ALLOW} if n > 0\n"
    ),
}


def fleet_documents(count: int, distinct: int, seed: int = 7) -> list[dict[str, object]]:
    """``count`` tool-call documents drawn from ``distinct`` different ones."""
    registry = yaml.safe_load((default_policy_folder() / "capabilities.yaml").read_text())
    types = {name: entry for name, entry in registry["agent_types"].items() if name != "*"}
    rng = random.Random(seed)
    pool = []
    for index in range(distinct):
        agent_type = rng.choice(sorted(types))
        entry = types[agent_type]
        tool = rng.choice([*entry["tools"], "iam.create_access_key"])
        pool.append(
            {
                "agent_id": f"{agent_type.lower()}-{index % 5}",
                "agent_type": agent_type,
                "kind": "tool_call",
                "action": tool,
                "amount_usd": rng.choice([0, 50, 400, 2500, 20000]),
                "data_zone": rng.choice(ZONES),
                "context": {
                    "capabilities": entry,
                    "budget": {"status": rng.choice(["ok", "ok", "warning", "breach"])},
                    "drift": [{"severity": "critical"}] if rng.random() < 0.1 else [],
                    "distinct": index,  # keeps the pool's documents distinct
                },
            }
        )
    return [rng.choice(pool) for _ in range(count)]


def statistics_document() -> dict[str, object]:
    registry = yaml.safe_load((default_policy_folder() / "capabilities.yaml").read_text())
    rng = random.Random(11)
    tools = {tool for entry in registry["agent_types"].values() for tool in entry["tools"]}
    return {
        "stats": {
            tool: {
                "failure_rate": rng.random() * 0.4,
                "override_rate": rng.random() * 0.3,
                "count": rng.randint(0, 500),
            }
            for tool in sorted(tools)
        }
    }


def latency(bundle: PolicyBundle, data: dict[str, object], decisions: int) -> None:
    documents = fleet_documents(decisions, decisions)
    for document in documents[:200]:
        bundle.evaluate(document, data)
    seconds = []
    for document in documents:
        started = time.perf_counter()
        bundle.evaluate(document, data)
        seconds.append(time.perf_counter() - started)
    p50, p99 = quantile(seconds, 0.50), quantile(seconds, 0.99)
    row("one decision p50", ms(p50), "", None)
    row("one decision p99", ms(p99), "< 5 ms", p99 < 0.005)


def synthetic_many(
    bundle: PolicyBundle, data: dict[str, object], actions: int, distinct: int
) -> None:
    documents = fleet_documents(actions, distinct)
    started = time.perf_counter()
    decisions = bundle.evaluate_many(documents, data)
    seconds = time.perf_counter() - started
    assert len(decisions) == actions
    zones = {zone: sum(d.zone == zone for d in decisions) for zone in ("green", "yellow", "red")}
    print(f"  synthetic zones: {zones}, denied {sum(d.decision == 'deny' for d in decisions):,}")
    row(f"evaluate_many, {actions:,} synthetic actions", f"{actions / seconds:,.0f} /s", "", None)
    row(f"  distinct documents evaluated ({distinct:,})", f"{distinct / seconds:,.0f} /s", "", None)


def stricter_policies(folder: Path) -> Path:
    """A copy of the shipped ``*.rego`` files in ``folder`` with the :data:`STRICTER`
    thresholds (the capability registry stays the one in force)."""
    replaced = set()
    for source in sorted(default_policy_folder().glob("*.rego")):
        text = source.read_text(encoding="utf-8")
        for name, value in STRICTER.items():
            text, count = re.subn(rf"^{name} := .*$", f"{name} := {value}", text, flags=re.M)
            if count:
                replaced.add(name)
        (folder / source.name).write_text(text, encoding="utf-8")
    missing = set(STRICTER) - replaced
    assert not missing, f"the shipped policies define no {sorted(missing)}"
    return folder


def fleet_home(home: Path | None, work: Path, weeks: int) -> tuple[Path, str]:
    """``home``, else the shared bench home when it holds agent_events, else a home built in
    ``work`` as bench_finops.py builds the shared one (same daily density, ``weeks`` weeks,
    FinOps tables refreshed), with a word on where it comes from."""
    if home is not None:
        return home, "given"
    shared = shared_home()
    if holds(shared, AGENT_EVENTS):
        return shared, "shared"
    from bench_finops import _build as build_finops_home

    from agentops_assets.finops.refresh import refresh_all

    print(
        f"  no shared bench home ($AGENTOPS_BENCH_HOME, built by `make bench`): building "
        f"{weeks} weeks of its fleet in {work / 'fleet'}",
        flush=True,
    )
    started = time.perf_counter()
    events = round(SHARED_EVENTS * weeks / SHARED_WEEKS)  # the shared home's events per week
    paths, first, last, _ = build_finops_home(work / "fleet", events, weeks)
    refresh_all(paths, first, last)
    row("  simulate + ingest + copy + FinOps tables", f"{time.perf_counter() - started:.1f} s",
        "", None)  # fmt: skip
    return paths.home, f"built, {weeks} weeks"


def last_days(paths: Paths, target: int) -> tuple[date, date, int, int]:
    """The fewest whole days from the end of ``agent_events`` holding ``target`` actions (all
    days when they hold fewer): first day, last day, days and actions."""
    per_day = (
        pl.scan_delta(paths.table_uri(AGENT_EVENTS))
        .filter(pl.col("kind").is_in(ACTION_KINDS))
        .group_by("event_date")
        .len()
        .sort("event_date", descending=True)
        .collect()
    )
    cumulative = per_day["len"].cum_sum()
    days = min(int((cumulative < target).sum()) + 1, per_day.height)
    return per_day["event_date"][days - 1], per_day["event_date"][0], days, cumulative[days - 1]


def real_backtest(home: Path, source: str, target: int, *, profile: bool) -> None:
    paths = Paths.from_env(home)
    first, last, days, actions = last_days(paths, target)
    events = pl.scan_delta(paths.table_uri(AGENT_EVENTS)).select(pl.len()).collect().item()
    print(
        f"  the whole history of {days} day(s) ({first} .. {last}), the last whole days of the "
        f"synthetic fleet in {home} ({source}, {events / 1e6:.1f} M events): {actions:,} "
        f"tool_call + decision actions"
    )
    if actions < target:
        print(
            f"  (the home holds only {actions:,} actions, fewer than the {target:,} asked: the "
            "1 M figure needs the shared home `make bench` builds, or a larger --home)"
        )
    print(
        "  judged by the shipped policies and by a stricter candidate "
        f"({', '.join(f'{k} {v}' for k, v in STRICTER.items())}); each distinct document is "
        "evaluated once (only the fields the policies read, per day)"
    )
    with tempfile.TemporaryDirectory(prefix="agentops-candidate-") as folder:
        candidate = stricter_policies(Path(folder))
        profiler = cProfile.Profile() if profile else None
        reports: list[BacktestReport] = []
        seconds = timed(
            lambda: reports.append(
                backtest(paths, candidate, first, last)
                if profiler is None
                else profiler.runcall(backtest, paths, candidate, first, last)
            )
        )
    report = reports[0]
    assert report.candidate_error is None, report.candidate_error
    row("actions evaluated", f"{report.evaluated:,}", f"{actions:,} in the days",
        report.evaluated == actions)  # fmt: skip
    row("  changed (decision or zone)", f"{report.changed:,}",
        f"{report.changed / max(report.evaluated, 1):.1%} of them", None)  # fmt: skip
    row("  distinct evaluations, shipped / candidate",
        f"{report.evaluations['current']:,} / {report.evaluations['candidate']:,}", "",
        None)  # fmt: skip
    print(f"  zones shipped {report.zones['current']}, candidate {report.zones['candidate']}")
    for old_d, old_z, new_d, new_z, count in report.transitions.head(4).iter_rows():
        print(f"    {old_d}/{old_z} -> {new_d}/{new_z}: {count:,}")
    verdict = seconds < BACKTEST_TARGET_S if actions >= BACKTEST_TARGET_ACTIONS else None
    target_text = "< 60 s" if verdict is not None else "< 60 s at 1 M (no verdict)"
    if profiler is not None:
        verdict, target_text = None, "under cProfile (no verdict)"
    row(f"backtest(), {actions:,} actions, {days} day(s)", f"{seconds:.1f} s", target_text,
        verdict)  # fmt: skip
    row("  actions per second", f"{actions / seconds:,.0f} /s", "", None)
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())


def fail_closed() -> None:
    for case, policy in BROKEN.items():
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "policy.rego").write_text(policy)
            try:
                PolicyBundle.load(folder)
                load = "loads"
            except PolicyBundleError:
                load = "load error"
            bundle = PolicyBundle.load(folder, on_error="deny")
            decision = bundle.evaluate({"zero": 0, "action": "x"}, timeout_s=0.05)
            bundle.close()
        row(
            f"{case} ({load})",
            f"{decision.decision}/{decision.zone}",
            "deny/red",
            decision.decision == "deny" and decision.zone == "red" and bool(decision.error),
        )


def ledger_entry(n: int) -> Entry:
    """The ``n``-th entry of a bench ledger (its payload holds the "yellow" the edits change)."""
    return Entry(
        kind=LEDGER_KINDS[n % len(LEDGER_KINDS)],
        actor=f"reviewer-{n % 3}",
        subject=f"trace-{n // 10}",
        payload={"n": n, "zone": "yellow", "reasons": ["over the limit"]},
        at=T0 + timedelta(seconds=n),
    )


def ledger_paths(home: Path) -> Paths:
    # Not Paths.from_env: AGENTOPS_LAKE_URI must never aim these forgeries at a real lake.
    return Paths(home=home, lake_uri=str(home / "lake"))


def where(position: int, size: int) -> str:
    names = {1: "first", (size + 1) // 2: "middle", size - 1: "last - 1", size: "last"}
    return names.get(position, "after last")


def found(outcome: Outcome) -> str:
    if outcome.found_seq is None:
        return "not found"
    return f"seq {outcome.found_seq} {outcome.found_kind}"


def tamper_matrix(size: int) -> None:
    with tempfile.TemporaryDirectory(prefix="agentops-ledger-") as folder:
        template = AuditLedger(ledger_paths(Path(folder) / "template"))
        for n in range(1, size + 1):
            template.append([ledger_entry(n)])
        copies = itertools.count()

        def fresh() -> AuditLedger:
            home = Path(folder) / f"copy-{next(copies)}"
            shutil.copytree(template.paths.home, home)
            return AuditLedger(ledger_paths(home))

        outcomes = run_matrix(fresh)
    for outcome in outcomes:
        row(
            f"{outcome.tamper} @ {where(outcome.position, size)} ({outcome.position})",
            found(outcome),
            f"seq {outcome.expected_seq} {outcome.expected_kind}",
            outcome.detected,
        )
    detected = sum(outcome.detected for outcome in outcomes)
    row(
        f"tamperings found at their entry, {size} entries",
        f"{detected}/{len(outcomes)}",
        f"{len(outcomes)}/{len(outcomes)}",
        detected == len(outcomes),
    )


def verify_throughput(entries: int, batch: int) -> None:
    with tempfile.TemporaryDirectory(prefix="agentops-ledger-") as folder:
        ledger = AuditLedger(ledger_paths(Path(folder)))
        started = time.perf_counter()
        for start in range(1, entries + 1, batch):
            stop = min(start + batch, entries + 1)
            ledger.append([ledger_entry(n) for n in range(start, stop)])
        appended = time.perf_counter() - started
        reports = []
        seconds = timed(lambda: reports.append(ledger.verify()))
    report = reports[0]
    assert report.ok and report.checked == entries, report.failure
    row(
        f"append, {entries:,} entries in batches of {batch:,}",
        f"{entries / appended:,.0f} /s",
        "",
        None,
    )
    row(f"verify(), {entries:,} entries", f"{entries / seconds:,.0f} /s", "", None)
    row("  one verify()", f"{seconds:.2f} s", "", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--actions", type=int, default=200_000)
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument(
        "--backtest-actions",
        type=int,
        default=BACKTEST_TARGET_ACTIONS,
        help="actions the back-test's days must hold; fewer is a quick check",
    )
    parser.add_argument("--home", type=Path, help="a home with agent_events (DIR/fleet)")
    parser.add_argument("--keep", type=Path, help="keep the working folder (a built home) here")
    parser.add_argument(
        "--weeks-if-built",
        type=int,
        default=3,
        help="weeks of the home built when there is no shared one",
    )
    parser.add_argument("--profile", action="store_true", help="the back-test under cProfile")
    parser.add_argument("--ledger-entries", type=int, default=200)
    parser.add_argument("--verify-entries", type=int, default=100_000)
    parser.add_argument("--verify-batch", type=int, default=10_000)
    args = parser.parse_args()
    print(f"Governance benchmarks on {os.cpu_count()} cores")
    started = time.perf_counter()
    bundle = PolicyBundle.load()
    data = statistics_document()
    bundle.evaluate(fleet_documents(1, 1)[0], data)  # compiles the policies with this data
    print(
        f"policy bundle {bundle.revision[:12]}: compiled in {time.perf_counter() - started:.2f} s"
    )
    latency(bundle, data, args.decisions)
    synthetic_many(bundle, data, args.actions, args.distinct)
    print("fail-closed matrix:")
    fail_closed()
    bundle.close()
    print("back-test of a stricter candidate over the fleet's history:")
    with work_folder("agentops-bench-governance-", args.keep) as work:
        home, source = fleet_home(args.home, work, args.weeks_if_built)
        real_backtest(home, source, args.backtest_actions, profile=args.profile)
    print(f"audit ledger tamper matrix ({args.ledger_entries} entries, one append each):")
    tamper_matrix(args.ledger_entries)
    print("audit ledger verify:")
    verify_throughput(args.verify_entries, args.verify_batch)


if __name__ == "__main__":
    main()
