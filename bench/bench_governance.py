"""Policy engine: one decision's latency, back-test throughput, and the fail-closed matrix.

One decision: the shipped policies (``policies/*.rego``) judge varied tool calls of the simulated
fleet's types through ``PolicyBundle.evaluate`` (worker-thread hand-off and timeout included);
p50 and p99 after a warm-up (goal p99 < 5 ms). Back-test: ``evaluate_many`` over a history
whose actions repeat (as tool calls do: the same type, tool, zone and amount bucket), which
evaluates each distinct document once; prints actions/s, distinct evaluations/s and the time a
1 M-action back-test would take at that rate (goal < 60 s). Fail-closed matrix: a syntax error,
a runtime error, an undefined decision, a malformed result and a timeout: each must deny.

Audit ledger: the tamper matrix (``agentops_assets.governance.tampering``) on a ledger of
``--ledger-entries`` entries, one append each: every forgery must be found at its expected entry,
as its expected kind. Then ``verify()`` on a ledger of ``--verify-entries`` entries appended in
batches of ``--verify-batch``: entries checked per second (a figure, no target).

    python bench/bench_governance.py [--decisions 2000] [--actions 200000] [--distinct 2000]
        [--ledger-entries 200] [--verify-entries 100000] [--verify-batch 10000]
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _report import ms, quantile, row, timed  # noqa: E402

from agentops_assets.governance.engine import (  # noqa: E402
    PolicyBundle,
    PolicyBundleError,
    default_policy_folder,
)
from agentops_assets.governance.ledger import AuditLedger, Entry  # noqa: E402
from agentops_assets.governance.tampering import Outcome, run_matrix  # noqa: E402
from agentops_assets.storage.config import Paths  # noqa: E402

ZONES = ("public", "internal", "restricted")
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


def backtest(bundle: PolicyBundle, data: dict[str, object], actions: int, distinct: int) -> None:
    documents = fleet_documents(actions, distinct)
    started = time.perf_counter()
    decisions = bundle.evaluate_many(documents, data)
    seconds = time.perf_counter() - started
    assert len(decisions) == actions
    zones = {zone: sum(d.zone == zone for d in decisions) for zone in ("green", "yellow", "red")}
    print(f"  back-test zones: {zones}, denied {sum(d.decision == 'deny' for d in decisions):,}")
    row(f"evaluate_many, {actions:,} actions", f"{actions / seconds:,.0f} /s", "", None)
    row(f"  distinct documents evaluated ({distinct:,})", f"{distinct / seconds:,.0f} /s", "", None)
    projected = 1_000_000 / (actions / seconds)
    row(
        "1 M actions at this rate and repetition",
        f"{projected:.1f} s",
        "< 60 s",
        projected < 60,
    )


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
    parser.add_argument("--ledger-entries", type=int, default=200)
    parser.add_argument("--verify-entries", type=int, default=100_000)
    parser.add_argument("--verify-batch", type=int, default=10_000)
    args = parser.parse_args()
    started = time.perf_counter()
    bundle = PolicyBundle.load()
    data = statistics_document()
    bundle.evaluate(fleet_documents(1, 1)[0], data)  # compiles the policies with this data
    print(
        f"policy bundle {bundle.revision[:12]}: compiled in {time.perf_counter() - started:.2f} s"
    )
    latency(bundle, data, args.decisions)
    backtest(bundle, data, args.actions, args.distinct)
    print("fail-closed matrix:")
    fail_closed()
    bundle.close()
    print(f"audit ledger tamper matrix ({args.ledger_entries} entries, one append each):")
    tamper_matrix(args.ledger_entries)
    print("audit ledger verify:")
    verify_throughput(args.verify_entries, args.verify_batch)


if __name__ == "__main__":
    main()
