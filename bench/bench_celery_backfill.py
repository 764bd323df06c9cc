"""The FinOps and drift backfill through Celery workers: 1 worker against 2 on this machine.

Data: the 10 M-event home of bench_finops.py (a simulated week of a 100-agent fleet, ingested,
then copied week after week until it holds nine weeks), reused from ``$AGENTOPS_BENCH_HOME``
when that holds ``agent_events`` (as under ``make bench``), else built here with ``--events``
events (``--events 1000000`` builds a smaller home the same way in a few minutes). Building and
ingesting are not timed.

For each worker count (1, then 2):

- the lake is a fresh copy of that home's lake without the FinOps and drift tables (the
  ingested tables only), so both configurations start from the same data and do equal work;
- a fresh PostgreSQL database holds Dagster's instance (deploy/dagster.yaml: run, event-log
  and schedule storage on PostgreSQL, its pools and concurrency settings as shipped);
- N Celery workers are started as the distributed demo starts them
  (``dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml -- --concurrency=1``:
  one step at a time per worker, a prefork pool of one process), on Redis as broker and result
  backend, on a database number nobody else uses at start (RabbitMQ's only vhost and its
  ``dagster`` queue are shared with the tests of other sessions, whose workers would take our
  steps with their own lake);
- one child process runs ``daily_job`` for each of the first ``--days`` days of the home, one
  run per day in day order (the next day starts when the day before has succeeded: a day's
  tables read the days before it, see agentops_assets/defs/executor.py), with
  ``AGENTOPS_EXECUTOR=celery`` and ``asset_selection`` = the assets of the ``finops`` and
  ``drift`` groups (event_costs, reasoning_cycles, agent_daily_metrics, agent_type_roi,
  budget_compliance; behavior_baselines, drift_findings, behavior_anomalies,
  coordination_findings) with their asset checks: 12 steps a day, 8 writing the lake
  (behavior_drift writes baselines and findings in one step) and 4 checks
  (event_costs_all_models_priced, budget_compliance_budget_within_caps,
  behavior_anomalies_no_behavior_anomalies, drift_findings_no_critical_drift); alerts and
  governance are not run. The lake-writing steps share the lake writers' pool, whose limit
  deploy/dagster.yaml sets to 1 (one lake-writing step at a time, whichever worker runs it):
  the bench keeps it unless ``--pool-limit N`` sets another in its copy of the profile. Every
  step executes in a worker; the child only plans the run and waits for the steps' results
  (``dagster.execute_job``, as ``execute_graph`` of agentops_assets/cli/distributed.py does,
  without the daemon and webserver, which would add their own polling to the wall time).

Measured: the wall time of the days' runs (the child's loop, its Python start-up excluded; the
first day includes each worker's first import of the code location, so the time without it is
printed too), the sum of the Celery tasks' durations in each worker's log (over the wall time:
how many steps executed at once on average; dagster-celery's run loop polls every second, a
floor per step on a sequential chain), the CPU seconds (user + system, from /proc, children
included) of the worker processes and of the run process over that time, CPU utilisation =
those CPU seconds / (wall x cores), and the machine's busy fraction over the same time from
/proc/stat (other sessions' load, PostgreSQL and Redis included).
Then the workers are stopped and the database dropped. The two lakes' tables are compared row
count by row count: the speed-up compares equal work only when they match.

    python bench/bench_celery_backfill.py [--events 10000000] [--days 60] [--workers 1 2]
                                          [--pool-limit N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from _report import holds, row, shared_home, work_folder

from agentops_assets.telemetry.schema import AGENT_EVENTS

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("finops", "drift")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"
READY_TIMEOUT = 180.0
RUNS_CODE = """
import json, resource, sys, time
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
keys = [dg.AssetKey.from_user_string(k) for k in json.loads(sys.argv[1])]
days = json.loads(sys.argv[2])
repository = ReconstructableRepository.for_module(
    "agentops_assets.definitions", "defs", working_directory=sys.argv[3])
job = repository.get_reconstructable_job("daily_job")
config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
seconds, steps = [], 0
with dg.DagsterInstance.get() as instance:
    cpu0, wall0 = cpu(), time.perf_counter()
    for day in days:
        started = time.perf_counter()
        result = dg.execute_job(job, instance, run_config=config, asset_selection=keys,
                                tags={"dagster/partition": day}, raise_on_error=False)
        seconds.append(time.perf_counter() - started)
        steps += len(result.get_step_success_events())
        if not result.success:
            print(json.dumps({"failed": day, "run_id": result.run_id}))
            sys.exit(3)
    print(json.dumps({"wall": time.perf_counter() - wall0, "cpu": cpu() - cpu0,
                      "days": seconds, "steps": steps}))
"""


@dataclass
class Outcome:
    """What one configuration measured."""

    workers: int
    wall: float
    run_cpu: float
    worker_cpu: float
    busy: float  # the machine's busy fraction over the wall time (/proc/stat)
    day_seconds: list[float]
    steps: int
    tables: dict[str, int]
    task_seconds: list[float]  # per worker: the sum of its Celery tasks' durations
    overlapping: tuple[int, int]  # steps on two workers at once: all pairs, lake writers' pairs

    @property
    def parallelism(self) -> float:
        """Mean number of steps executing at once: the workers' task time over the wall time."""
        return sum(self.task_seconds) / self.wall

    @property
    def utilisation(self) -> float:
        return (self.run_cpu + self.worker_cpu) / (self.wall * (os.cpu_count() or 1))


# --- Data ---


def base_home(work: Path, events: int) -> tuple[Path, list[str], int]:
    """The ingested home: ``$AGENTOPS_BENCH_HOME`` when it holds agent_events, else built here;
    its event days and event count."""
    import polars as pl

    from agentops_assets.storage.config import Paths

    shared = shared_home()
    if holds(shared, AGENT_EVENTS) or holds(work / "fleet", AGENT_EVENTS):
        home = shared if holds(shared, AGENT_EVENTS) else work / "fleet"
        row("home reused", str(home), "", None)
    else:
        from bench_finops import _build

        started = time.perf_counter()
        home = _build(work / "fleet", events, 9)[0].home
        row("home built (simulate + ingest + copies)", f"{time.perf_counter() - started:.0f} s",
            "not timed below", None)  # fmt: skip
    frame = pl.scan_delta(Paths.from_env(home).table_uri(AGENT_EVENTS))
    days = frame.select(pl.col("event_date").unique().sort()).collect().to_series()
    count = frame.select(pl.len()).collect().item()
    return home, [day.isoformat() for day in days], count


def writer_steps() -> set[str]:
    """Step keys of daily_job's steps in the lake writers' pool."""
    from agentops_assets.definitions import defs
    from agentops_assets.defs.telemetry.assets import LAKE_WRITERS_POOL

    job = defs.resolve_job_def("daily_job")
    return {
        node.name
        for node in job.graph.node_defs
        if getattr(node, "pool", None) == LAKE_WRITERS_POOL
    }


def selected_assets() -> list[str]:
    """The asset keys of the FinOps and drift groups (each is the Delta table of its name)."""
    from agentops_assets.definitions import defs

    return sorted(
        spec.key.to_user_string()
        for spec in defs.resolve_all_asset_specs()
        if spec.group_name in GROUPS
    )


def fresh_lake(base: Path, home: Path, drop: list[str]) -> None:
    """``home`` with a copy of ``base``'s lake, the tables named in ``drop`` left out."""
    home.mkdir(parents=True)
    shutil.copytree(
        base / "lake",
        home / "lake",
        ignore=lambda folder, names: drop if folder == str(base / "lake") else [],
    )


def row_counts(home: Path) -> dict[str, int]:
    """Rows of every Delta table of ``home``'s lake."""
    import polars as pl

    from agentops_assets.storage import lake
    from agentops_assets.storage.config import Paths

    counts = {}
    for table, uri in sorted(lake.list_tables(Paths.from_env(home)).items()):
        frame = lake.scan(uri)
        counts[table] = 0 if frame is None else frame.select(pl.len()).collect().item()
    return counts


# --- Processes and CPU ---


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def session_cpu(session: int) -> float:
    """CPU seconds (user + system, waited-for children included) of the processes of a session:
    a worker started in its own session is the dagster-celery launcher, celery's main process
    and its pool process."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        # fields[0] is the state (field 3 of stat); session is field 6, utime..cstime 14..17.
        if fields is not None and int(fields[3]) == session:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def free_redis_db() -> str:
    """A Redis URL on a database number holding no key now."""
    import redis

    for number in [*range(8, 16), *range(1, 8)]:
        if redis.Redis.from_url(f"{REDIS}/{number}").dbsize() == 0:
            return f"{REDIS}/{number}"
    raise SystemExit("Every Redis database 1..15 holds keys; the bench needs an empty one.")


def wait_ready(log: Path, process: subprocess.Popen, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"A Celery worker exited (code {process.returncode}); log: {log}")
        if log.exists() and " ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise SystemExit(f"A Celery worker was not ready within {timeout:.0f} s; log: {log}")


TASK_DONE = re.compile(
    r"^\[(\S+ \S+),(\d+): \S+\] Task execute_plan\[[^\]]+\] succeeded in ([0-9.]+)s.*?"
    r'"text": "([^"]+)"\}, "label": "step_keys"',
    re.MULTILINE,
)


@dataclass(frozen=True)
class Task:
    """One step a worker executed (from its log): when, for how long, which step."""

    worker: str
    start: float
    end: float
    step: str


def worker_tasks(log: Path) -> list[Task]:
    """The Celery tasks (Dagster steps) a worker's log reports as succeeded."""
    from datetime import datetime

    tasks = []
    for stamp, millis, seconds, step in TASK_DONE.findall(log.read_text(errors="replace")):
        end = datetime.fromisoformat(stamp).timestamp() + int(millis) / 1000
        tasks.append(Task(log.stem, end - float(seconds), end, step))
    return tasks


def overlaps(tasks: list[Task], writers: set[str]) -> tuple[int, int]:
    """Pairs of steps on different workers that ran at the same time: all, and those where
    both steps write the lake (their step key is in ``writers``)."""
    ordered = sorted(tasks, key=lambda t: t.start)
    pairs = both = 0
    for n, first in enumerate(ordered):
        for second in ordered[n + 1 :]:
            if second.start >= first.end:
                break
            if second.worker != first.worker:
                pairs += 1
                both += first.step in writers and second.step in writers
    return pairs, both


def _admin(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(f"{PG_SERVER}/postgres")
    connection.autocommit = True
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


# --- One configuration ---


def write_profile(target: Path, pool_limit: int | None) -> None:
    """deploy/dagster.yaml at ``target``; with ``pool_limit``, its pools' default limit (the
    lake writers' pool among them) set to it instead of the shipped one."""
    import yaml

    from agentops_assets.cli import distributed

    profile = yaml.safe_load(distributed.PROFILE.read_text())
    if pool_limit is not None:
        profile["concurrency"]["pools"]["default_limit"] = pool_limit
    target.write_text(yaml.safe_dump(profile))


def shipped_pool_limit() -> int:
    import yaml

    from agentops_assets.cli import distributed

    return yaml.safe_load(distributed.PROFILE.read_text())["concurrency"]["pools"]["default_limit"]


def run_configuration(
    workers: int,
    base: Path,
    work: Path,
    days: list[str],
    assets: list[str],
    pool_limit: int | None = None,
) -> Outcome:
    """The backfill of ``days`` through ``workers`` Celery workers on a fresh lake and database."""
    from agentops_assets.cli import distributed
    from agentops_assets.storage.config import Paths

    home = work / f"workers-{workers}"
    shutil.rmtree(home, ignore_errors=True)  # an earlier run's, with --keep
    fresh_lake(base, home, assets)
    paths = Paths.from_env(home)
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    write_profile(dagster_home / "dagster.yaml", pool_limit)
    logs = home / "logs"
    logs.mkdir()
    database = f"agentops_bench_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{database}"')
    broker = free_redis_db()
    env = distributed.deployment_env(
        paths, dagster_home, pg_url=f"{PG_SERVER}/{database}", lake_env={}
    )
    env.update(AGENTOPS_CELERY_BROKER=broker, AGENTOPS_CELERY_BACKEND=broker)
    env.pop("AGENTOPS_LAKE_URI", None)
    env.pop("AGENTOPS_INDEX_URI", None)
    deployment = distributed.Deployment(home, dagster_home, f"bench_{database}", env, 0, logs)
    try:
        names = [f"worker{n}" for n in range(1, workers + 1)]
        for name in names:
            distributed.start_worker(deployment, name, concurrency=1)
        for name in names:
            wait_ready(logs / f"{name}.log", deployment.processes[name])
        sessions = [deployment.processes[name].pid for name in names]
        worker_cpu0 = sum(session_cpu(s) for s in sessions)
        busy0, total0 = machine_ticks()
        out = subprocess.run(
            [sys.executable, "-c", RUNS_CODE, json.dumps(assets), json.dumps(days), str(ROOT)],
            env=env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        busy1, total1 = machine_ticks()
        worker_cpu = sum(session_cpu(s) for s in sessions) - worker_cpu0
        lines = out.stdout.strip().splitlines()
        report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
        if out.returncode != 0 or "wall" not in report:
            raise SystemExit(
                f"The runs through {workers} worker(s) failed ({report or 'no report'}); "
                f"output: {(out.stdout + out.stderr)[-3000:]} worker logs: {logs}"
            )
    finally:
        deployment.stop_all()
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    tasks = [task for name in names for task in worker_tasks(logs / f"{name}.log")]
    return Outcome(
        workers=workers,
        wall=report["wall"],
        run_cpu=report["cpu"],
        worker_cpu=worker_cpu,
        busy=(busy1 - busy0) / max(1, total1 - total0),
        day_seconds=report["days"],
        steps=report["steps"],
        tables=row_counts(home),
        task_seconds=[sum(t.end - t.start for t in tasks if t.worker == n) for n in names],
        overlapping=overlaps(tasks, writer_steps()),
    )


# --- Report ---


def print_outcome(outcome: Outcome) -> None:
    cores = os.cpu_count() or 1
    label = f"{outcome.workers} worker{'s' if outcome.workers > 1 else ''}"
    days = outcome.day_seconds
    row(f"{label}: wall time of {len(days)} daily runs", f"{outcome.wall:.1f} s", "", None)
    row("  per day: first / median / max",
        f"{days[0]:.1f} / {sorted(days)[len(days) // 2]:.1f} / {max(days):.1f} s",
        f"{outcome.steps} steps succeeded", None)  # fmt: skip
    if len(days) > 1:
        row("  wall time without the first day", f"{sum(days[1:]):.1f} s",
            "(workers' first import)", None)  # fmt: skip
    tasks = " + ".join(f"{t:.0f}" for t in outcome.task_seconds)
    row("  step time in the workers (Celery tasks)", f"{tasks} s",
        f"{outcome.parallelism:.2f} steps at once", None)  # fmt: skip
    if outcome.workers > 1:
        pairs, writers = outcome.overlapping
        row("  step pairs on two workers at once", f"{pairs}",
            f"{writers} of two lake writers", None)  # fmt: skip
    row("  CPU of the workers", f"{outcome.worker_cpu:.1f} s", "user + system", None)
    row("  CPU of the run process", f"{outcome.run_cpu:.1f} s", "plans, waits", None)
    row(f"  CPU utilisation (CPU s / wall x {cores})", f"{outcome.utilisation:.0%}", "", None)
    row("  machine busy over the same time", f"{outcome.busy:.0%}", "all processes", None)
    print(f"  load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}", flush=True)


def _rest(outcome: Outcome) -> float:
    """Wall time of the days after the first (the workers' first import is in the first)."""
    return sum(outcome.day_seconds[1:]) or outcome.wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=10_000_000,
        help="events of the home built when $AGENTOPS_BENCH_HOME holds none",
    )
    parser.add_argument("--days", type=int, default=60, help="the home's first DAYS days")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--pool-limit",
        type=int,
        help="the pools' default limit (lake writers' pool) instead of deploy/dagster.yaml's",
    )
    parser.add_argument("--keep", type=Path, help="keep the working folder here")
    args = parser.parse_args()
    load = os.getloadavg()
    with work_folder("agentops-bench-celery-", args.keep) as work:
        print(f"Celery backfill benchmark on {os.cpu_count()} cores, work folder {work}, "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)  # fmt: skip
        base, all_days, events = base_home(work, args.events)
        days = all_days[: args.days]
        assets = selected_assets()
        row("agent_events", f"{events:,} ev", f"{all_days[0]} .. {all_days[-1]}", None)
        row("days backfilled (one daily_job run each)", f"{len(days)}",
            f"{days[0]} .. {days[-1]}", None)  # fmt: skip
        print(f"  assets run (with their checks): {', '.join(assets)}", flush=True)
        limit = args.pool_limit if args.pool_limit is not None else shipped_pool_limit()
        row("lake writers' pool limit (steps at once)", f"{limit}",
            "as shipped" if args.pool_limit is None else "--pool-limit", None)  # fmt: skip
        outcomes = []
        for workers in args.workers:
            outcome = run_configuration(workers, base, work, days, assets, args.pool_limit)
            print_outcome(outcome)
            outcomes.append(outcome)
            if args.keep is None:
                shutil.rmtree(work / f"workers-{workers}", ignore_errors=True)

        reference = outcomes[0].tables
        for table in sorted(set().union(*(o.tables for o in outcomes))):
            counts = [o.tables.get(table) for o in outcomes]
            if table in assets or len(set(counts)) > 1:
                row(f"  rows of {table}", " / ".join(f"{c:,}" if c is not None else "missing"
                    for c in counts), "per configuration", len(set(counts)) == 1)  # fmt: skip
        equal = all(o.tables == reference for o in outcomes)
        load = os.getloadavg()
        print(f"VERDICT tables equal across {', '.join(str(o.workers) for o in outcomes)} "
              f"worker(s) (row counts per table): {'PASS' if equal else 'FAIL'}")  # fmt: skip
        if len(outcomes) >= 2:
            first, last = outcomes[0], outcomes[-1]
            print(f"VERDICT reported: {len(days)}-day FinOps+drift backfill, {first.workers} "
                  f"worker(s) {first.wall:.1f} s ({first.utilisation:.0%} CPU), {last.workers} "
                  f"worker(s) {last.wall:.1f} s ({last.utilisation:.0%} CPU): speed-up "
                  f"{first.wall / last.wall:.2f}x ({_rest(first) / _rest(last):.2f}x without the "
                  f"first day) on {os.cpu_count()} cores, lake writers' pool "
                  f"limit {limit}; "
                  f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")  # fmt: skip
        if not equal:
            sys.exit(1)


if __name__ == "__main__":
    main()
