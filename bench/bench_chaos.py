"""Chaos drills over several seeds: does every scenario get the reaction its policies say, within
one pipeline run of the injection?

Builds a home the way ``agentops demo`` does, smaller: ``--agents`` agents simulated for
``--days`` days ending yesterday with no incident (seed 42), run through ``agentops run``
(ingestion, memory, one ``daily_job`` per day, control). Then every scenario of
``agentops chaos list`` runs once per seed in ``--seeds`` (the seed picks among the three
busiest agent types of the replayed day, and the agent): each drill copies the home, replays
the target's last day as today with the fault in it, runs ingestion, today's ``daily_job`` and
``control_job`` on the copy in-process, and checks the reaction. Prints the drill table (seed,
target, detected by, state change, alerts, ledger entries, seconds from injection to the end of
that one run) and a verdict per scenario: every seed reacted as expected.

    python bench/bench_chaos.py [--agents 12] [--days 10] [--seeds 0 1 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _report import row, work_folder  # noqa: E402


def build_home(home: Path, agents: int, days: int) -> float:
    """Simulate and run a fleet into ``home``; seconds taken."""
    from datetime import UTC, datetime, timedelta

    started = time.perf_counter()
    env = {**os.environ, "AGENTOPS_HOME": str(home)}
    env.pop("AGENTOPS_POLICIES", None)
    first = (datetime.now(UTC).date() - timedelta(days=days)).isoformat()
    agentops = [sys.executable, "-m", "agentops_assets"]
    for command in (
        ["simulate", "--agents", str(agents), "--days", str(days), "--seed", "42",
         "--start", first, "--cycles-per-day", "40"],
        ["run"],
    ):  # fmt: skip
        done = subprocess.run([*agentops, *command], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"agentops {command[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=12)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=Path, help="keep the working folder here")
    args = parser.parse_args()
    print(f"Chaos drills on {os.cpu_count()} cores", flush=True)
    with work_folder("agentops-bench-chaos-", args.keep) as folder:
        home = folder / "home"
        seconds = build_home(home, args.agents, args.days)
        print(
            f"  home: {args.agents} agents x {args.days} days (no incident), built and run in "
            f"{seconds:.0f} s: {home}",
            flush=True,
        )
        os.environ["AGENTOPS_HOME"] = str(home)
        os.environ.pop("AGENTOPS_POLICIES", None)
        from agentops_assets.control.chaos import SCENARIOS
        from agentops_assets.defs.control.chaos import run_drill
        from agentops_assets.storage.config import Paths

        paths = Paths.from_env()
        print(f"  {'scenario':<21} {'seed':>4}  {'target':<30} {'detected by':<36} "
              f"{'state change':<32} {'alerts':>6} {'ledger':>6} {'s':>4}  result")  # fmt: skip
        outcomes: dict[str, list[bool]] = {}
        for scenario in SCENARIOS:
            for seed in args.seeds:
                drill = run_drill(paths, scenario, seed=seed, report=lambda line: None)
                r = drill.row
                outcomes.setdefault(scenario, []).append(r["passed"])
                print(
                    f"  {scenario:<21} {seed:>4}  {r['target'][:30]:<30} "
                    f"{r['detected_by'][:36]:<36} {r['state_change'][:32]:<32} "
                    f"{r['alerts']:>6} {r['ledger_entries']:>6} {r['seconds_to_react']:>4.0f}  "
                    f"{'as expected' if r['passed'] else 'NOT: ' + r['detail'][:80]}",
                    flush=True,
                )
        print("verdicts (every seed reacted as its policies say, within one pipeline run):")
        for scenario, passed in outcomes.items():
            row(scenario, f"{sum(passed)}/{len(passed)}", f"{len(passed)}/{len(passed)}",
                all(passed))  # fmt: skip


if __name__ == "__main__":
    main()
