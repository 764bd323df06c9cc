"""Soak: SIGKILL ``agentops run`` at random moments; recovery must end as a clean run ends.

A simulated fleet's telemetry arrives one day per round in two homes. In the reference home
each round is one uninterrupted ``agentops run``. In the soak home each round's runs are
killed with SIGKILL (the whole process group) at random moments, spread over the time a
clean run of that round takes (start-up, ingestion, memory, retrieval index, FinOps), then
one more ``agentops run`` must finish within a timeout (no run may hang on a slot or lock a
killed run left behind). After every recovery, every Delta table, the memory and the
retrieval index must hold exactly what the reference holds, timing columns aside.

Run with ``make soak`` (about 10 minutes on 2 cores); ``--rounds`` and ``--kills`` scale it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).parent))
from _report import row, work_folder  # noqa: E402

# Columns that record when or how long something ran, not what the data is.
VOLATILE = {"ingested_at", "evaluated_at", "created_at", "updated_at", "recorded_at"}
VOLATILE_BY_TABLE = {
    "ingested_files": {"duration_ms"},
    # Memory versions count Delta commits, compactions included, which a kill can shift.
    "memory_feed_cycles": {"memory_version"},
}
AREA_ORDER = ("ingestion", "memory", "finops")
# Which part of the platform a Dagster step belongs to.
MEMORY_STEPS = ("memory_", "knowledge_")  # the memory assets and their checks
# Figures computed from the moment of evaluation, not from the data: a budget's burn rate and
# forecast for the day being evaluated (today is still running), and the note a recovery
# leaves on a ledger row it rebuilt from the memory log.
RECOVERY_NOTE = "recorded from the memory log"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="days of telemetry, one per round")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per round")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300, help="seconds a recovery may take")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp folder)")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with work_folder("agentops-soak-", args.keep) as root:
        staging, reference, soak = root / "staging", root / "reference", root / "soak"
        print(
            f"Soak: {args.agents} agents, {args.rounds} days arriving one per round, "
            f"{args.kills} SIGKILLs of `agentops run` per round (seed {args.seed})",
            flush=True,
        )
        _agentops(
            staging, "simulate", "--agents", str(args.agents), "--days", str(args.rounds),
            "--seed", str(args.seed), "--format", "both", "--bad-fraction", "0.005",
        )  # fmt: skip
        days = sorted(p for p in (staging / "landing").iterdir() if p.is_dir())
        for home in (reference, soak):
            knowledge = Path(__file__).parents[1] / "agentops_assets" / "examples" / "knowledge"
            shutil.copytree(knowledge, home / "knowledge")
        phases: Counter[str] = Counter()
        hung = mismatched = 0
        for number, day in enumerate(days, start=1):
            for home in (reference, soak):
                shutil.copytree(day, home / "landing" / day.name)  # copy2: same mtimes
            before = _run_ids(reference)
            if _timed_run(reference, args.timeout) is None:
                print(f"round {number}: the reference run failed or hung", flush=True)
                return 1
            steps = _clean_steps(reference, before)
            killed = []
            for attempt in range(args.kills):
                # Areas in turn, so every one of them is hit; a random step and moment in it.
                area = AREA_ORDER[(number * args.kills + attempt) % len(AREA_ORDER)]
                killed.append(_kill_run(soak, rng.choice(steps[area]), rng, timeout=args.timeout))
                phases[killed[-1][0]] += 1
            recovery = _timed_run(soak, args.timeout)
            hung += (recovery is None) + sum(area == "hung" for area, _ in killed)
            differences = _differences(reference, soak)
            mismatched += bool(differences)
            verdict = "equal" if not differences else "DIFFERENT: " + "; ".join(differences)
            took = "HUNG or failed" if recovery is None else f"{recovery:.1f} s"
            print(
                f"round {number:>2} ({day.name}): killed in "
                f"{', '.join(f'{area} ({step})' if step else area for area, step in killed)}; "
                f"recovery {took}; tables {verdict}",
                flush=True,
            )
        kills = sum(phases[area] for area in AREA_ORDER)
        print("\nKills by what was running:", dict(sorted(phases.items())))
        row("SIGKILLs over ingestion, memory and FinOps", f"{kills}", ">= 20", kills >= 20)
        covered = {"ingestion", "memory", "finops"} <= set(phases)
        row("kills landed in each of the three", str(covered), "True", covered)
        row("recoveries that hung or failed", f"{hung}", "0", hung == 0)
        row("rounds whose tables differ from a clean run", f"{mismatched}", "0", mismatched == 0)
        return 0 if kills >= 20 and covered and hung == mismatched == 0 else 1


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "AGENTOPS_HOME": str(home)}
    env.pop("AGENTOPS_LAKE_URI", None)
    env.pop("DAGSTER_HOME", None)  # opening an instance here sets it; each run sets its own
    return env


def _agentops(home: Path, *args: str) -> None:
    command = [sys.executable, "-m", "agentops_assets", *args]
    subprocess.run(command, env=_env(home), check=True, capture_output=True)


def _timed_run(home: Path, timeout: float) -> float | None:
    """Seconds one ``agentops run`` takes, or ``None`` if it failed or passed the timeout."""
    started = time.perf_counter()
    process = _start_run(home)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None
    return time.perf_counter() - started if code == 0 else None


def _start_run(home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentops_assets", "run"],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes every child too
    )


def _area(job: str, step: str) -> str:
    if job == "finops_job":
        return "finops"
    return "memory" if step.startswith(MEMORY_STEPS) else "ingestion"


def _clean_steps(home: Path, before: set[str]) -> dict[str, list[tuple[str, str, float]]]:
    """Steps of the runs made since ``before``: area -> (job, step, seconds it took)."""
    import dagster as dg

    steps: dict[str, list[tuple[str, str, float]]] = {}
    with _instance(home) as instance:
        for run in instance.get_runs():
            if run.run_id in before:
                continue
            logs = instance.all_logs(run.run_id)
            began = {
                e.dagster_event.step_key: e.timestamp
                for e in logs
                if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START
            }
            ended = {
                e.dagster_event.step_key: e.timestamp
                for e in logs
                if e.dagster_event and e.dagster_event.is_step_success
            }
            for step, at in began.items():
                took = ended.get(step, at) - at
                steps.setdefault(_area(run.job_name, step), []).append((run.job_name, step, took))
    return steps


def _kill_run(
    home: Path, target: tuple[str, str, float], rng: random.Random, *, timeout: float
) -> tuple[str, str]:
    """Start ``agentops run``; SIGKILL its process group at a random moment of one step.

    The moment is drawn from the time the step took in the clean run, counted from when
    the step starts here. Returns the area and step the kill landed in; the area is "hung"
    when the step did not start within ``timeout`` seconds.
    """
    import dagster as dg

    job, step, took = target
    before = _run_ids(home)
    process = _start_run(home)
    started_at = None
    deadline = time.monotonic() + timeout
    while started_at is None and process.poll() is None:
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return "hung", step
        time.sleep(0.05)
        if not (home / "dagster" / "dagster.yaml").exists():
            continue
        with _instance(home) as instance:
            for run in instance.get_runs():
                if run.run_id in before or run.job_name != job:
                    continue
                starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                if any(e.dagster_event.step_key == step for e in starts):
                    started_at = time.monotonic()
    if started_at is not None:
        time.sleep(rng.uniform(0, max(took, 0.05)))
    if process.poll() is not None:
        return "after the run ended", step
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return _area(job, step), step


def _instance(home: Path):
    """The home's Dagster instance, opened as ``agentops`` opens it (a fresh home's storage is
    created under the instance lock, so this watcher never races the run it watches)."""
    from agentops_assets.cli.dagster_instance import open_instance
    from agentops_assets.storage.config import Paths

    return open_instance(Paths.from_env(home))


def _run_ids(home: Path) -> set[str]:
    if not (home / "dagster" / "dagster.yaml").exists():
        return set()
    with _instance(home) as instance:
        return {run.run_id for run in instance.get_runs()}


def _snapshot(home: Path) -> dict[str, pl.DataFrame]:
    """Every Delta table and the retrieval index's rows, without timing columns, sorted."""
    lake = home / "lake"
    tables = {}
    for folder in sorted(p for p in lake.iterdir() if (p / "_delta_log").is_dir()):
        frame = _without_moment(folder.name, pl.read_delta(str(folder)))
        drop = (VOLATILE | VOLATILE_BY_TABLE.get(folder.name, set())) & set(frame.columns)
        tables[folder.name] = _sorted(frame.drop(sorted(drop)))
    import lancedb

    database = lancedb.connect(str(home / "lance"))
    for name in database.list_tables().tables:
        frame = pl.from_arrow(database.open_table(name).to_arrow())
        keep = [c for c in frame.columns if frame.schema[c] in (pl.String, pl.Int64, pl.Float64)]
        tables[f"lance:{name}"] = _sorted(frame.select(keep))
    return tables


def _without_moment(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` less the figures that depend on when it was computed (see RECOVERY_NOTE)."""
    if table == "budget_compliance":
        today = pl.col("day") == pl.col("evaluated_at").dt.date()
        moving = ("burn_rate_usd_per_day", "forecast_usd")
        return frame.with_columns(pl.when(~today).then(pl.col(c)).alias(c) for c in moving)
    if table == "memory_feed_cycles":
        note = pl.col("reason").str.starts_with(RECOVERY_NOTE).fill_null(False)
        return frame.with_columns(reason=pl.when(~note).then(pl.col("reason")))
    return frame


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.select(sorted(frame.columns))
    # Exact columns first, so floats that differ in their last bits never reorder rows.
    exact = [c for c in frame.columns if not frame.schema[c].is_float()]
    floats = [c for c in frame.columns if frame.schema[c].is_float()]
    return frame.sort(exact + floats, nulls_last=True) if frame.height else frame


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """Equal frames; sums of floats may differ in their last bits with the order polars adds
    them in, so floats compare to a relative 1e-9."""
    try:
        assert_frame_equal(a, b, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
    except AssertionError:
        return False
    return True


def _differences(reference: Path, soak: Path) -> list[str]:
    expected, found = _snapshot(reference), _snapshot(soak)
    problems = []
    for name in sorted(expected.keys() | found.keys()):
        if name not in found or name not in expected:
            problems.append(f"{name} only in {'reference' if name in expected else 'soak'}")
        elif not _same(expected[name], found[name]):
            a, b = expected[name], found[name]
            problems.append(f"{name} ({a.height:,} rows vs {b.height:,})")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
