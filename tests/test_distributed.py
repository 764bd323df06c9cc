"""The demo graph through real Celery workers on PostgreSQL storage equals the embedded run.

A small fleet (3 agents, 2 days) is materialized twice: once in-process (``agentops run``, the
embedded demo's sequence, on a sqlite instance), once with ``AGENTOPS_EXECUTOR=celery`` on the
production profile (deploy/dagster.yaml on a fresh PostgreSQL database), every step executed by
one of two Celery workers started here (``dagster-celery worker start``, deploy/celery.yaml,
Redis as broker and result backend on a database number of its own). While the last day's run
executes, the worker process running one of its steps is SIGKILLed: every table still reads
whole, the killed step goes back to the queue and runs again, and the lakes, compared with the
distributed demo's own function, are equal.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from agentops_assets.cli import distributed
from agentops_assets.simulator import simulate
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths, environment
from tests.test_deploy_profile import PROFILE, SERVER, _admin

ROOT = Path(__file__).parent.parent
AGENTS, DAYS, SEED = 3, 2, 11
RUN_TIMEOUT = 600


@dataclass
class Cluster:
    """Two Celery workers on Redis, the profile on a fresh database, and two homes."""

    deployment: distributed.Deployment
    env: dict[str, str]  # the distributed side's environment
    home: Paths  # the distributed side
    embedded: Paths
    days: list[str]


def _simulate(paths: Paths) -> None:
    simulate(
        paths.landing,
        paths.simulator,
        agents=AGENTS,
        days=DAYS,
        seed=SEED,
        fmt="both",
        bad_fraction=0.005,
        cycles_per_agent_day=20,
        first_incident_day=1,
    )
    shutil.copytree(ROOT / "agentops_assets" / "examples" / "knowledge", paths.knowledge)


def _run_graph(
    env: dict[str, str],
    *,
    jobs: list[str],
    days: list[str] | None = None,
    retry_of: str | None = None,
) -> subprocess.Popen:
    """``execute_graph`` in a child process with the distributed side's environment."""
    code = (
        "import sys\n"
        "from agentops_assets.cli.distributed import execute_graph\n"
        "from agentops_assets.storage.config import Paths\n"
        f"results = execute_graph(Paths.from_env(), jobs={jobs!r}, days={days!r}, "
        f"retry_of={retry_of!r})\n"
        "sys.exit(0 if results and all(r.success for r in results) else 3)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"The run did not finish in {RUN_TIMEOUT} s: {output.decode()[-3000:]}")
    return process.returncode, output.decode(errors="replace")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("distributed")
    home, embedded = Paths.from_env(root / "celery"), Paths.from_env(root / "embedded")
    for side in (home, embedded):
        _simulate(side)
    database = f"agentops_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{database}"')
    dagster_home = home.home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(PROFILE, dagster_home / "dagster.yaml")
    broker = f"redis://127.0.0.1:6379/{1 + uuid.uuid4().int % 15}"
    env = distributed.deployment_env(home, dagster_home, pg_url=f"{SERVER}/{database}", lake_env={})
    env.update(AGENTOPS_CELERY_BROKER=broker, AGENTOPS_CELERY_BACKEND=broker)
    env.pop("AGENTOPS_LAKE_URI", None)
    logs = root / "logs"
    logs.mkdir()
    deployment = distributed.Deployment(home.home, dagster_home, f"test_{database}", env, 0, logs)
    try:
        for name in ("worker1", "worker2"):
            distributed.start_worker(deployment, name)
        embedded_run = subprocess.run(
            [str(Path(sys.executable).parent / "agentops"), "run"],
            env={
                **{
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("DAGSTER_", "AGENTOPS_"))
                },
                "AGENTOPS_HOME": str(embedded.home),
            },
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        assert embedded_run.returncode in (0, 1), embedded_run.stderr[-3000:]
        with environment(AGENTOPS_HOME=str(home.home)):
            from agentops_assets.finops.refresh import event_days

            days = [day.isoformat() for day in event_days(embedded)]
        yield Cluster(deployment, env, home, embedded, days)
    finally:
        deployment.stop_all()
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _instance(cluster: Cluster) -> dg.DagsterInstance:
    with environment(
        DAGSTER_HOME=cluster.env["DAGSTER_HOME"], DAGSTER_PG_URL=cluster.env["DAGSTER_PG_URL"]
    ):
        return dg.DagsterInstance.get()


def _differences(cluster: Cluster) -> list[str]:
    comparisons = distributed.compare_lakes(cluster.home, cluster.embedded)
    assert len(comparisons) >= 20
    return [f"{c.table}: {c.left} != {c.right}" for c in comparisons if not c.equal]


def _busy_pool_processes(broker: str) -> list[tuple[int, str]]:
    """The workers' pool processes executing a step right now, with their task's id (Celery's
    own ``inspect active`` answer, through the broker)."""
    from celery import Celery

    app = Celery(broker=broker, backend=broker)
    try:
        active = app.control.inspect(timeout=0.5).active() or {}
    finally:
        app.close()
    return [(task["worker_pid"], task["id"]) for tasks in active.values() for task in tasks]


def _kill_workers_mid_run(
    instance: dg.DagsterInstance, cluster: Cluster, day: str
) -> tuple[str, list[str]]:
    """Run ``day``'s daily_job; SIGKILL the pool process of a worker while it executes one of
    the run's steps, and read every table right then.

    Returns:
        The id of the run, and the ids of the Celery tasks whose process was killed.
    """
    before = {r.dagster_run.run_id for r in instance.get_run_records()}
    runner = _run_graph(cluster.env, jobs=["daily_job"], days=[day])
    deadline = time.monotonic() + RUN_TIMEOUT
    killed: list[str] = []
    while not killed and time.monotonic() < deadline and runner.poll() is None:
        for pid, task in _busy_pool_processes(cluster.env["AGENTOPS_CELERY_BROKER"]):
            os.kill(pid, signal.SIGKILL)
            killed.append(task)
    assert killed, "no worker process was killed: the run ended before a step was seen running"
    # Every table reads whole right after the kill: a killed writer leaves no partial commit.
    with environment(AGENTOPS_HOME=str(cluster.home.home)):
        for name, uri in lake.list_tables(cluster.home).items():
            assert lake.scan(uri).collect() is not None, name
    code, output = _finish(runner)
    assert code == 0, f"the run did not survive the killed worker: {output[-4000:]}"
    (run,) = [
        r.dagster_run for r in instance.get_run_records() if r.dagster_run.run_id not in before
    ]
    return run.run_id, killed


def test_celery_workers_survive_a_kill_and_give_the_embedded_tables(cluster: Cluster) -> None:
    *first_days, last_day = cluster.days
    code, output = _finish(_run_graph(cluster.env, jobs=["assets", "daily_job"], days=first_days))
    assert code == 0, output[-4000:]
    with _instance(cluster) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        _, killed = _kill_workers_mid_run(instance, cluster, last_day)
    # The killed step went back to the queue (deploy/celery.yaml: acks late, rejected on a lost
    # worker) and ran again, to success, on a worker's new pool process.
    logs = "".join(p.read_text() for p in cluster.deployment.logs.glob("worker*.log"))
    assert "exited with 'signal 9 (SIGKILL)'" in logs
    for task in killed:
        assert f"Task execute_plan[{task}] succeeded" in logs, task
    code, output = _finish(_run_graph(cluster.env, jobs=["control_job"]))
    assert code == 0, output[-4000:]
    # The run that lost its workers, then the autonomy evaluation: the embedded run's tables.
    assert _differences(cluster) == []
    with _instance(cluster) as instance:
        runs = instance.get_run_records()
        assert {r.dagster_run.job_name for r in runs} == {"__ASSET_JOB", "daily_job", "control_job"}
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        workers = set()
        for record in runs:
            for entry in instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT
            ):
                metadata = entry.dagster_event.engine_event_data.metadata
                if "Celery worker" in metadata:
                    workers.add(metadata["Celery worker"].value.split("@")[0])
    # Every step ran on one of the two workers, and both took some.
    location = cluster.deployment.location
    assert workers == {f"{location}-worker1", f"{location}-worker2"}


def test_the_comparison_sees_a_changed_value_and_ignores_volatile_columns(tmp_path: Path) -> None:
    import polars as pl

    from agentops_assets.storage.lake import overwrite

    rows = {"a": [1, 2], "x": [0.1 + 0.2, 1.0], "ingested_at": [1, 2]}
    for side, frame in {
        "left": pl.DataFrame(rows),
        "same": pl.DataFrame({**rows, "x": [1.0, 0.3], "a": [2, 1], "ingested_at": [5, 6]}),
        "other": pl.DataFrame({**rows, "a": [1, 3]}),
    }.items():
        overwrite(str(tmp_path / side / "lake" / "t"), frame)
    left, same, other = (Paths.from_env(tmp_path / n) for n in ("left", "same", "other"))
    assert [c.identical for c in distributed.compare_lakes(left, same)] == [True]
    assert [c.equal for c in distributed.compare_lakes(left, other)] == [False]
    # A float a rounding step away (1e-6) is equal within the tolerance, not identical.
    overwrite(str(tmp_path / "near" / "lake" / "t"), pl.DataFrame({**rows, "x": [0.300001, 1.0]}))
    (near,) = distributed.compare_lakes(left, Paths.from_env(tmp_path / "near"))
    assert near.equal and not near.identical


def test_the_executor_follows_agentops_executor() -> None:
    from agentops_assets.defs import executor

    with environment(AGENTOPS_EXECUTOR=None):
        assert executor.selected_executor() is None
    with environment(AGENTOPS_EXECUTOR="celery", AGENTOPS_CELERY_BROKER="redis://h:6379/0"):
        chosen = executor.selected_executor()
        assert chosen.name == "celery"
        # The URL stays in the environment: the config names the variable, not its value.
        assert executor.celery_config()["broker"] == {"env": "AGENTOPS_CELERY_BROKER"}
    with environment(AGENTOPS_EXECUTOR="k8s"), pytest.raises(executor.ExecutorSettingError):
        executor.selected_executor()


def test_daily_assets_backfill_as_one_run_because_days_read_the_days_before() -> None:
    """A multi-run backfill would start every day at once, and a day's drift, ROI, budget or
    governance could read days not written yet: every daily asset keeps the single-run policy
    (see agentops_assets/defs/executor.py), and distributed days run in day order."""
    from agentops_assets.definitions import defs

    daily = [
        node for node in defs.resolve_asset_graph().asset_nodes if node.partitions_def is not None
    ]
    assert len(daily) >= 14
    for node in daily:
        policy = node.backfill_policy
        assert policy is not None and policy.max_partitions_per_run is None, node.key
