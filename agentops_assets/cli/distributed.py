"""``agentops demo --distributed``: the demo fleet through Dagster's production deployment.

It starts, from the project's own files and on this machine, what a cluster runs on several:

- the local S3 server (``storage/local_s3.py``) holding the lake and the index;
- a gRPC code server (``dagster api grpc``) of this code location, a Dagster webserver and the
  daemon, on ``deploy/dagster.yaml`` with PostgreSQL storage (the database of
  ``AGENTOPS_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/agentops``, created when
  missing; its runs stay there after the demo);
- two Celery workers (``dagster-celery worker start -A dagster_celery.app -y
  deploy/celery.yaml``) on the broker ``AGENTOPS_CELERY_BROKER`` (RabbitMQ's local guest account
  by default); every step of every run executes on one of them (``AGENTOPS_EXECUTOR=celery``).

Then it simulates the demo's fleet (same seed as ``agentops demo``) and lets the deployment work:
the landing sensor requests the ingestion, the memory-version sensor refreshes the index, the
findings sensor evaluates autonomy. The other assets (memory and knowledge, then one
``daily_job`` run per day, like the embedded demo) are launched through the webserver's GraphQL
API into the queued run coordinator: the daemon starts them, never this process. Each day's run
is launched when the day before it has succeeded, because a day's tables read the days before
it (drift and anomalies the trailing window's cycles, ROI the month to date, governance the
days' findings, the audit ledger appends in day order): the steps of a run fan out across the
workers, the days follow their data dependencies. Sensors and schedules that would write
outside this sequence (the automation sensor, the hourly and daily schedules, the policy change
sensor) are stopped for the demo's code location, which has its own name each time, so that
no earlier demo's run keys or cursors apply.

At the end it prints the demo's summary, runs the embedded demo (``agentops demo``) for the
same seed into another home, and compares the two lakes table by table (:func:`compare_lakes`).
Everything it started is stopped on the way out, on Ctrl-C or a failure too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import yaml

from agentops_assets.defs.executor import DEFAULT_BACKEND, DEFAULT_BROKER
from agentops_assets.storage.config import Paths, environment

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROFILE = DEPLOY / "dagster.yaml"
CELERY_CONFIG = DEPLOY / "celery.yaml"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/agentops"
REPOSITORY = "__repository__"  # the repository name Dagster gives a Definitions object
# Sensors the deployment keeps running for the demo; every other sensor and every schedule of
# its code location is stopped (their ticks would write outside the demo's sequence).
DEMO_SENSORS = ("landing_sensor",)
# Started once the memory run has ended: while memory_facts commits version after version, the
# memory-version sensor would request an index refresh for each of them. The knowledge sensor
# keys its runs by the folder's content, so on a database that saw an earlier demo it finds
# that run and skips: the memory run covers the knowledge chunks, the sensor follows changes.
LATER_SENSORS = ("memory_version_sensor", "knowledge_sensor")
CONTROL_SENSOR = "findings_sensor"
CONTROL_GROUP = "control"
POLL_SECONDS = 2.0

# Columns that legitimately differ between two runs of the same fleet: wall-clock times of the
# processing (not of the telemetry), the home's own paths and file times, run-dependent ids and
# the audit ledger's hash chain (each entry's hash covers its wall-clock time). Every other
# column of every table must be equal.
VOLATILE_COLUMNS: dict[str, frozenset[str]] = {
    "*": frozenset(
        {"ingested_at", "recorded_at", "judged_at", "evaluated_at", "changed_at", "run_id"}
    ),
    "agent_events": frozenset({"source_file"}),
    "agent_events_quarantine": frozenset({"source_file"}),
    "ingested_files": frozenset({"path", "modified_at", "duration_ms"}),
    "alerts_sent": frozenset(
        {"first_attempt_at", "last_attempt_at", "next_attempt_at", "delivered_at"}
    ),
    "audit_ledger": frozenset({"at", "prev_hash", "hash"}),
    "memory_facts": frozenset({"created_at", "updated_at"}),
    "review_queue": frozenset({"created_at"}),
}
# Floating-point sums depend on the order of their terms (polars aggregates in parallel): two
# runs of the same demo differ in the last bits of a spend or a spread. Floats are compared to
# this many significant digits.
FLOAT_DIGITS = 10


class DistributedDemoError(click.ClickException):
    """A part of the deployment did not start or a run failed; the message says which."""


# --- Comparing two lakes ---


@dataclass(frozen=True)
class TableDigest:
    """Row count and order-independent checksum of one table (volatile columns left out)."""

    rows: int
    checksum: str
    columns: tuple[str, ...]


def volatile_columns(table: str) -> frozenset[str]:
    """The columns of ``table`` that the comparison leaves out."""
    return VOLATILE_COLUMNS["*"] | VOLATILE_COLUMNS.get(table, frozenset())


def table_digest(uri: str, table: str) -> TableDigest:
    """Digest of the Delta table at ``uri``: each row (kept columns, sorted by name, written as
    canonical JSON) hashed with SHA-256, the hashes summed modulo 2**256; the sum does not
    depend on the rows' order or on how the table is split into files."""
    from agentops_assets.storage import lake

    frame = lake.scan(uri)
    if frame is None:
        return TableDigest(0, "absent", ())
    skip = volatile_columns(table)
    columns = tuple(sorted(c for c in frame.collect_schema().names() if c not in skip))
    rows = frame.select(columns).collect()
    total = 0
    for row in rows.iter_rows():
        text = json.dumps(_canonical(row), default=str, separators=(",", ":"))
        total = (total + int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")) % (1 << 256)
    return TableDigest(rows.height, f"{total:064x}"[:16], columns)


def _canonical(value):
    """``value`` with every float rounded to :data:`FLOAT_DIGITS` significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{FLOAT_DIGITS}g}")
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class TableComparison:
    """One line of the comparison: a table's digest on each side, and, when the digests differ,
    whether the rows are equal with floats within :data:`FLOAT_TOLERANCE`."""

    table: str
    left: TableDigest | None
    right: TableDigest | None
    close: bool = False

    @property
    def identical(self) -> bool:
        return self.left is not None and self.left == self.right

    @property
    def equal(self) -> bool:
        return self.identical or self.close


# Several assets round their figures (to 6 decimals) after parallel sums whose last bits depend
# on the order of the terms: a value on a rounding boundary can land on either side. Rows whose
# digests differ are compared again, floats within this absolute tolerance (or 1e-9 relative).
FLOAT_TOLERANCE = 2e-6


def rows_close(left_uri: str, right_uri: str, table: str) -> bool:
    """The two tables' kept rows are equal, floats within :data:`FLOAT_TOLERANCE`: rows sorted
    by every other column, then column by column."""
    import polars as pl

    from agentops_assets.storage import lake

    frames = [lake.scan(uri) for uri in (left_uri, right_uri)]
    if any(frame is None for frame in frames):
        return False
    skip = volatile_columns(table)
    schema = frames[0].collect_schema()
    if schema != frames[1].collect_schema():
        return False
    columns = [c for c in schema.names() if c not in skip]
    floats = [c for c in columns if schema[c] in (pl.Float32, pl.Float64)]
    keys = [c for c in columns if c not in floats and not isinstance(schema[c], pl.List)]
    left, right = (
        frame.select(columns).sort([*keys, *floats], nulls_last=True).collect() for frame in frames
    )
    if left.height != right.height or not left.drop(floats).equals(right.drop(floats)):
        return False
    for column in floats:
        a, b = left[column], right[column]
        if not a.is_null().equals(b.is_null()):
            return False
        gap = (a - b).abs().fill_null(0.0)
        allowed = (b.abs() * 1e-9).fill_null(0.0) + FLOAT_TOLERANCE
        if (gap > allowed).any():
            return False
    return True


def compare_lakes(left: Paths, right: Paths) -> list[TableComparison]:
    """Every table of either lake, with both digests; the lakes may live on different stores
    (pass each side's ``Paths``; their URIs carry the location)."""
    from agentops_assets.storage import lake

    left_tables, right_tables = lake.list_tables(left), lake.list_tables(right)
    comparisons = []
    for table in sorted(set(left_tables) | set(right_tables)):
        item = TableComparison(
            table,
            table_digest(left_tables[table], table) if table in left_tables else None,
            table_digest(right_tables[table], table) if table in right_tables else None,
        )
        if item.left and item.right and not item.identical and item.left.rows == item.right.rows:
            close = rows_close(left_tables[table], right_tables[table], table)
            item = TableComparison(table, item.left, item.right, close=close)
        comparisons.append(item)
    return comparisons


def comparison_table(comparisons: list[TableComparison], left: str, right: str):
    """The comparison as a rich table."""
    from rich.table import Table

    table = Table(title=f"Tables: {left} against {right}", title_justify="left")
    for column in ("table", f"rows {left}", f"rows {right}", "checksum", "same"):
        table.add_column(column)
    for item in comparisons:
        rows = [str(d.rows) if d else "missing" for d in (item.left, item.right)]
        checksum = (
            item.left.checksum
            if item.identical
            else " / ".join(d.checksum if d else "-" for d in (item.left, item.right))
        )
        if item.identical:
            same = "[green]yes[/]"
        elif item.close:
            same = f"[yellow]yes[/], floats within {FLOAT_TOLERANCE:g}"
        else:
            same = "[red]NO[/]"
        table.add_row(item.table, *rows, checksum, same)
    return table


# --- The deployment's processes ---


def free_port() -> int:
    from agentops_assets.storage.local_s3 import free_port as free

    return free()


@dataclass
class Deployment:
    """The processes of a local deployment and how to reach them."""

    home: Path
    dagster_home: Path
    location: str
    env: dict[str, str]
    webserver_port: int
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    s3: object | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def graphql(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}/graphql"

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        """Start ``command`` in its own session (so its children stop with it), output to a log."""
        with (self.logs / f"{name}.log").open("ab") as out:
            process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.dagster_home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise DistributedDemoError(
                    f"The {name} process exited (code {process.returncode}); its log: "
                    f"{self.logs / (name + '.log')}"
                )

    def stop(self, name: str, *, kill: bool = False) -> None:
        """Stop one process and its children (SIGTERM, then SIGKILL after 20 s)."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop_all(self) -> None:
        # Workers and the daemon first, so nothing new starts while the rest goes.
        for name in sorted(self.processes, key=lambda n: (not n.startswith("worker"), n)):
            self.stop(name)
        if self.s3 is not None:
            self.s3.stop()


def ensure_database(url: str) -> None:
    """Create the database named by the PostgreSQL ``url`` when it does not exist."""
    import psycopg2
    from psycopg2 import sql

    server, _, name = url.rpartition("/")
    name = name.split("?")[0]
    try:
        connection = psycopg2.connect(f"{server}/postgres")
    except psycopg2.OperationalError as error:
        raise DistributedDemoError(
            f"Cannot reach PostgreSQL at {server} ({str(error).strip()}); set AGENTOPS_PG_URL "
            "to postgresql://USER@HOST:PORT/DATABASE of a reachable server."
        ) from None
    connection.autocommit = True
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def ensure_broker(url: str) -> None:
    """Fail with one sentence when the Celery broker does not answer (the workers would wait
    for it for ever, and the runs with them)."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # kombu raises the transport's own errors
        shown = url.split("@")[-1]  # no credentials in the message
        raise DistributedDemoError(
            f"The Celery broker at {shown} does not answer ({type(error).__name__}); start "
            "RabbitMQ or Redis, or set AGENTOPS_CELERY_BROKER to a reachable broker URL."
        ) from None


def dagster_url(url: str) -> str:
    """The SQLAlchemy URL dagster-postgres needs: the psycopg2 driver named explicitly."""
    scheme, _, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if scheme in {"postgresql", "postgres"} else url


def prepare_dagster_home(dagster_home: Path, location: str, grpc_port: int) -> Path:
    """``dagster_home`` holding the production profile and a workspace naming the code server;
    returns the workspace file."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROFILE, dagster_home / "dagster.yaml")
    workspace = dagster_home / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "grpc_server": {
                            "host": "127.0.0.1",
                            "port": grpc_port,
                            "location_name": location,
                        }
                    }
                ]
            }
        )
    )
    return workspace


def deployment_env(
    paths: Paths, dagster_home: Path, *, pg_url: str, lake_env: dict[str, str]
) -> dict[str, str]:
    """The environment every process of the deployment shares."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AGENTOPS_LAKE_URI", "AGENTOPS_INDEX_URI"))
    }
    env.update(
        {
            "AGENTOPS_HOME": str(paths.home),
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_URL": dagster_url(pg_url),
            "AGENTOPS_EXECUTOR": "celery",
            "AGENTOPS_CELERY_BROKER": os.environ.get("AGENTOPS_CELERY_BROKER") or DEFAULT_BROKER,
            "AGENTOPS_CELERY_BACKEND": os.environ.get("AGENTOPS_CELERY_BACKEND") or DEFAULT_BACKEND,
            "PYTHONUNBUFFERED": "1",
            # `dagster-celery worker start` runs `celery` from the PATH: this environment's.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            **lake_env,
        }
    )
    return env


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def start_code_server(deployment: Deployment, grpc_port: int) -> None:
    deployment.start(
        "grpc",
        [
            _bin("dagster"), "api", "grpc", "-m", "agentops_assets.definitions",
            "-h", "127.0.0.1", "-p", str(grpc_port), "--location-name", deployment.location,
        ],
    )  # fmt: skip


def start_webserver(deployment: Deployment, workspace: Path) -> None:
    deployment.start(
        "webserver",
        [
            _bin("dagster-webserver"), "-w", str(workspace),
            "-h", "127.0.0.1", "-p", str(deployment.webserver_port),
        ],
    )  # fmt: skip


def start_daemon(deployment: Deployment, workspace: Path) -> None:
    deployment.start("daemon", [_bin("dagster-daemon"), "run", "-w", str(workspace)])


def start_worker(deployment: Deployment, name: str, *, concurrency: int = 1) -> None:
    """A Celery worker taking the ``dagster`` queue's steps, ``concurrency`` at a time."""
    deployment.start(
        name,
        [
            _bin("dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
            "-y", str(CELERY_CONFIG), "-n", f"{deployment.location}-{name}",
            "--", f"--concurrency={concurrency}",
        ],
    )  # fmt: skip


# --- Talking to the webserver ---


def graphql(deployment: Deployment, query: str, variables: dict | None = None) -> dict:
    """Run one GraphQL query on the webserver; its ``data``, or a clear error."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        deployment.graphql, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        payload = json.loads(answer.read())
    if payload.get("errors"):
        raise DistributedDemoError(f"The webserver refused a query: {payload['errors'][0]}")
    return payload["data"]


_INSTIGATORS = """
query ($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on Repository {
      sensors { id name sensorState { status } }
      schedules { id name scheduleState { status } }
    }
    ... on PythonError { message }
    ... on RepositoryNotFoundError { message }
  }
}
"""


def _selector(deployment: Deployment) -> dict:
    return {"repositoryLocationName": deployment.location, "repositoryName": REPOSITORY}


def wait_for_location(deployment: Deployment, timeout: float = 300.0) -> dict:
    """Wait until the webserver answers and has loaded the code location; its instigators."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        deployment.check_alive()
        try:
            data = graphql(deployment, _INSTIGATORS, {"selector": _selector(deployment)})
            repository = data["repositoryOrError"]
            if repository["__typename"] == "Repository":
                return repository
            last = repository.get("message", repository["__typename"])
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last = str(error)
        time.sleep(POLL_SECONDS)
    raise DistributedDemoError(
        f"The webserver did not load the code location within {timeout:.0f} s: {last}"
    )


def set_instigators(deployment: Deployment, repository: dict, running: set[str]) -> None:
    """Start the sensors named in ``running``; stop every other sensor and every schedule."""
    for sensor in repository["sensors"]:
        status = sensor["sensorState"]["status"]
        if sensor["name"] in running and status != "RUNNING":
            graphql(
                deployment,
                "mutation ($s: SensorSelector!) { startSensor(sensorSelector: $s) "
                "{ __typename ... on PythonError { message } } }",
                {"s": {**_selector(deployment), "sensorName": sensor["name"]}},
            )
        elif sensor["name"] not in running and status == "RUNNING":
            graphql(
                deployment,
                "mutation ($id: String) { stopSensor(id: $id) { __typename } }",
                {"id": sensor["id"]},
            )
    for schedule in repository["schedules"]:
        if schedule["scheduleState"]["status"] == "RUNNING":
            graphql(
                deployment,
                "mutation ($id: String) { stopRunningSchedule(id: $id) { __typename } }",
                {"id": schedule["id"]},
            )


def launch_run(
    deployment: Deployment,
    job: str,
    *,
    tags: dict[str, str] | None = None,
    assets: list[str] | None = None,
) -> str:
    """Submit a run of ``job`` (or of ``assets`` through the implicit asset job) to the queue."""
    selector = {**_selector(deployment), "jobName": job}
    if assets:
        selector["assetSelection"] = [{"path": name.split("/")} for name in assets]
    params = {
        "selector": selector,
        "executionMetadata": {
            "tags": [{"key": key, "value": value} for key, value in (tags or {}).items()]
        },
    }
    data = graphql(
        deployment,
        "mutation ($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
        "... on RunConfigValidationInvalid { errors { message } } ... on Error { message } } }",
        {"p": params},
    )
    result = data["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise DistributedDemoError(f"The webserver did not launch {job}: {result}")
    return result["run"]["runId"]


# --- Watching the instance ---


def wait_until(
    instance,
    deployment: Deployment,
    done: Callable[[], bool],
    *,
    what: str,
    report: Callable[[str], None],
    since: float,
    timeout: float = 1800.0,
) -> None:
    """Poll until ``done()``; report the runs' state when it changes; fail on a failed run."""
    from dagster import DagsterRunStatus, RunsFilter

    deadline = time.monotonic() + timeout
    said = ""
    while not done():
        deployment.check_alive()
        records = instance.get_run_records(
            filters=RunsFilter(created_after=datetime.fromtimestamp(since, UTC))
        )
        failed = [r for r in records if r.dagster_run.status == DagsterRunStatus.FAILURE]
        if failed:
            run = failed[0].dagster_run
            raise DistributedDemoError(
                f"Run {run.run_id[:8]} ({run.job_name} {run.tags.get('dagster/partition', '')}) "
                f"failed: {failure_message(instance, run.run_id)}"
            )
        counts: dict[str, int] = {}
        for record in records:
            status = record.dagster_run.status.value.lower()
            counts[status] = counts.get(status, 0) + 1
        state = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        sentence = f"{what}: runs {state or 'none yet'}"
        if sentence != said:
            report(sentence)
            said = sentence
        if time.monotonic() > deadline:
            raise DistributedDemoError(f"{what} did not finish within {timeout:.0f} s.")
        time.sleep(POLL_SECONDS)


def failure_message(instance, run_id: str) -> str:
    """The first step failure's message of a run, else its run failure's."""
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.is_step_failure:
            return str(event.step_failure_data.error.message).strip()
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "PIPELINE_FAILURE":
            return entry.message or "the run failed"
    return "the run failed"


def runs_settled(instance, since: float, jobs: dict[str, int] | None = None) -> bool:
    """No run created since ``since`` is queued, starting or started; and each job of ``jobs``
    has at least that many successful runs."""
    from dagster import DagsterRunStatus, RunsFilter

    records = instance.get_run_records(
        filters=RunsFilter(created_after=datetime.fromtimestamp(since, UTC))
    )
    unfinished = [r for r in records if not r.dagster_run.is_finished]
    if unfinished:
        return False
    succeeded: dict[str, int] = {}
    for record in records:
        if record.dagster_run.status == DagsterRunStatus.SUCCESS:
            name = record.dagster_run.job_name
            succeeded[name] = succeeded.get(name, 0) + 1
    return all(succeeded.get(job, 0) >= n for job, n in (jobs or {}).items())


def run_status(instance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return run.status if run else None


def missing_materializations(instance, days: list[str]) -> list[str]:
    """The assets (and, for daily assets, the days) that have no materialization yet."""
    from dagster import AssetKey

    from agentops_assets.definitions import defs

    missing = []
    for spec in defs.resolve_all_asset_specs():
        key = AssetKey(spec.key.path) if not isinstance(spec.key, AssetKey) else spec.key
        if spec.partitions_def is None:
            if instance.get_latest_materialization_event(key) is None:
                missing.append(key.to_user_string())
            continue
        done = instance.get_materialized_partitions(key)
        missing += [f"{key.to_user_string()}[{day}]" for day in days if day not in done]
    return missing


# --- The demo ---


@dataclass
class Phase:
    name: str
    seconds: float


@dataclass
class DistributedResult:
    """What a distributed materialization did: its phases and the runs, for the summary."""

    phases: list[Phase] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)


@contextmanager
def timed(
    result: DistributedResult,
    name: str,
    report: Callable[[str], None],
    *,
    since: float | None = None,
) -> Iterator[None]:
    """Time the block (from ``since``, a ``perf_counter`` reading, when given) as a phase."""
    started = time.perf_counter() if since is None else since
    report(f"{name} ...")
    yield
    seconds = time.perf_counter() - started
    result.phases.append(Phase(name, seconds))
    report(f"{name}: {seconds:.1f} s")


@contextmanager
def deployment(
    paths: Paths,
    *,
    pg_url: str,
    workers: int = 2,
    lake_on_s3: bool = True,
    report: Callable[[str], None] = lambda message: None,
) -> Iterator[Deployment]:
    """Start the deployment for ``paths``; stop all of it on the way out, whatever happens."""
    ensure_database(pg_url)
    ensure_broker(os.environ.get("AGENTOPS_CELERY_BROKER") or DEFAULT_BROKER)
    location = f"agentops_demo_{datetime.now(UTC):%Y%m%d%H%M%S}_{os.getpid()}"
    dagster_home = paths.home / "dagster"
    grpc_port = free_port()
    workspace = prepare_dagster_home(dagster_home, location, grpc_port)
    logs = paths.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    s3 = None
    lake_env: dict[str, str] = {}
    if lake_on_s3:
        from agentops_assets.storage.local_s3 import start_local_s3

        s3 = start_local_s3()
        lake_env = s3.env(prefix=location)
        report(f"S3 server on {s3.endpoint}: lake {lake_env['AGENTOPS_LAKE_URI']}")
    env = deployment_env(paths, dagster_home, pg_url=pg_url, lake_env=lake_env)
    running = Deployment(paths.home, dagster_home, location, env, free_port(), logs, s3=s3)
    try:
        start_code_server(running, grpc_port)
        start_webserver(running, workspace)
        for n in range(1, workers + 1):
            start_worker(running, f"worker{n}")
        yield running
    finally:
        report("Stopping the deployment ...")
        running.stop_all()


def materialize_distributed(
    running: Deployment,
    workspace: Path,
    *,
    report: Callable[[str], None],
    result: DistributedResult,
) -> None:
    """Drive the demo graph through the deployment until every asset is materialized."""
    from dagster import DagsterInstance, DagsterRunStatus

    from agentops_assets.definitions import defs

    with environment(**{k: running.env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_URL")}):
        instance = DagsterInstance.get()
    since = time.time()
    with timed(
        result,
        "start: S3 server, code server, webserver, 2 workers, daemon; sensors set",
        report,
        since=running.started,
    ):
        repository = wait_for_location(running)
        set_instigators(running, repository, set(DEMO_SENSORS))
        start_daemon(running, workspace)
    with timed(result, "ingestion (landing sensor)", report):
        wait_until(
            instance,
            running,
            lambda: runs_settled(instance, since) and not landing_waiting(running),
            what="waiting for the landing sensor's ingestion",
            report=report,
            since=since,
        )
    with timed(result, "memory, knowledge and maintenance (queued, run by the daemon)", report):
        rest = [
            spec.key.to_user_string()
            for spec in defs.resolve_all_asset_specs()
            if spec.partitions_def is None and spec.group_name not in {CONTROL_GROUP, "telemetry"}
        ]
        run_id = launch_run(running, "__ASSET_JOB", assets=rest)
        _wait_run(instance, running, run_id, report, since)
        # From now on the memory-version sensor keeps the index on the latest memory.
        set_instigators(running, wait_for_location(running), {*DEMO_SENSORS, *LATER_SENSORS})
    days = telemetry_days(running)
    with timed(result, f"{len(days)} daily runs (steps on the Celery workers)", report):
        for day in days:
            run_id = launch_run(running, "daily_job", tags={"dagster/partition": day})
            _wait_run(instance, running, run_id, report, since, what=f"daily_job {day}")
    with timed(result, "autonomy (findings sensor)", report):
        repository = wait_for_location(running)
        set_instigators(running, repository, {*DEMO_SENSORS, *LATER_SENSORS, CONTROL_SENSOR})
        wait_until(
            instance,
            running,
            lambda: (
                runs_settled(instance, since, {"control_job": 1})
                and not missing_materializations(instance, days)
            ),
            what="waiting for the autonomy evaluation",
            report=report,
            since=since,
        )
    from dagster import RunsFilter

    records = instance.get_run_records(
        filters=RunsFilter(created_after=datetime.fromtimestamp(since, UTC)), ascending=True
    )
    result.run_ids = [
        r.dagster_run.run_id for r in records if r.dagster_run.status == DagsterRunStatus.SUCCESS
    ]
    instance.dispose()


def landing_waiting(running: Deployment) -> bool:
    """Whether landing files wait for ingestion into the deployment's lake."""
    from agentops_assets.telemetry.ingest import ingested_stamps
    from agentops_assets.telemetry.landing import discover, pending_files

    with environment(**_lake_env(running)):
        paths = paths_for(running)
        return bool(pending_files(discover(paths.landing_uri), ingested_stamps(paths)))


def telemetry_days(running: Deployment) -> list[str]:
    """The days the embedded demo runs daily_job for: those with telemetry in the partitions."""
    from agentops_assets.cli.runner import finops_days

    with environment(**_lake_env(running)):
        blocks = finops_days(paths_for(running))
    return [
        (first + timedelta(n)).isoformat()
        for first, last in blocks
        for n in range((last - first).days + 1)
    ]


def _wait_run(instance, running, run_id, report, since, what: str | None = None) -> None:
    from dagster import DagsterRunStatus

    label = what or f"run {run_id[:8]}"
    wait_until(
        instance,
        running,
        lambda: run_status(instance, run_id) == DagsterRunStatus.SUCCESS,
        what=label,
        report=report,
        since=since,
    )


def run_outcome(instance, run_ids: list[str]):
    """The summary lines of the runs, as the embedded demo prints them."""
    from agentops_assets.cli.runner import RunOutcome, add_event_lines, merge_days

    outcome, days = RunOutcome(), RunOutcome()
    count = 0
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        target = days if run.job_name == "daily_job" else outcome
        count += run.job_name == "daily_job"
        target.run_ids.append(run_id)
        logs = instance.all_logs(run_id)
        add_event_lines([entry.dagster_event for entry in logs if entry.dagster_event], target)
    control = [line for line in outcome.lines if line[0].startswith("autonomy_state")]
    outcome.lines = [line for line in outcome.lines if line not in control]
    merge_days(days, outcome, count)
    outcome.lines += control
    return outcome


def run_embedded(home: Path, *, agents: int, days: int, seed: int, log: Path) -> None:
    """``agentops demo`` for the same fleet into ``home`` (a local lake), output to ``log``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AGENTOPS_LAKE_URI", "AGENTOPS_INDEX_URI", "AGENTOPS_EXECUTOR"))
        and key not in {"DAGSTER_HOME", "DAGSTER_PG_URL"}
    }
    env["AGENTOPS_HOME"] = str(home)
    command = [_bin("agentops"), "demo", "--agents", str(agents), "--days", str(days)]
    command += ["--seed", str(seed)]
    with log.open("wb") as out:
        code = subprocess.call(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    # The embedded demo exits 1 when a check fails unexpectedly; its tables are still whole.
    if code not in (0, 1):
        raise DistributedDemoError(f"The embedded demo failed (exit {code}); its output: {log}")


def demo_distributed(agents: int, days: int, seed: int) -> int:
    """The command's body: returns the exit code (1 when any table differs)."""
    from agentops_assets.cli import main as cli

    console, err = cli.console, cli.err
    started = time.perf_counter()
    base = Paths.from_env()
    home = base.home / "distributed"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    paths = Paths.from_env(home)
    pg_url = os.environ.get("AGENTOPS_PG_URL") or DEFAULT_PG_URL
    result = DistributedResult()

    def report(message: str) -> None:
        err.print(f"[dim]{datetime.now():%H:%M:%S}[/] {message}", soft_wrap=True)

    with environment(AGENTOPS_HOME=str(home)):
        summary = cli.simulate_demo_fleet(paths, agents=agents, days=days, seed=seed)
        cli._seed_knowledge(paths)
    console.print(
        f"Simulated {summary.events:,} events from {agents} agents over {days} days into "
        f"{paths.landing}"
    )
    interrupted: list[int] = []

    def stop(signum: int, frame: object) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with deployment(paths, pg_url=pg_url, report=report) as running:
            materialize_distributed(
                running, running.dagster_home / "workspace.yaml", report=report, result=result
            )
            with environment(**_lake_env(running)):
                distributed_paths = paths_for(running)
                _print_summary(distributed_paths, running, result, summary)
                embedded = Path(tempfile.mkdtemp(prefix="agentops-embedded-"))
                try:
                    with timed(result, "embedded demo (same seed, agentops demo)", report):
                        run_embedded(
                            embedded,
                            agents=agents,
                            days=days,
                            seed=seed,
                            log=running.logs / "embedded.log",
                        )
                    with timed(result, "comparison, table by table", report):
                        comparisons = compare_lakes(
                            distributed_paths,
                            Paths(home=embedded, lake_uri=str(embedded / "lake")),
                        )
                finally:
                    shutil.rmtree(embedded, ignore_errors=True)
    except KeyboardInterrupt:
        name = signal.Signals(interrupted[-1]).name if interrupted else "SIGINT"
        err.print(f"[red]Stopped by {name}[/]; everything the demo started is stopped.")
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    console.print(comparison_table(comparisons, "distributed", "embedded"))
    excluded = ", ".join(sorted(VOLATILE_COLUMNS["*"]))
    console.print(
        f"  Left out of the checksums: {excluded} in every table; "
        + "; ".join(
            f"{table}: {', '.join(sorted(cols))}"
            for table, cols in VOLATILE_COLUMNS.items()
            if table != "*"
        )
    )
    phases = phases_table(result)
    console.print(phases)
    differ = [c.table for c in comparisons if not c.equal]
    console.print(
        f"Done in {time.perf_counter() - started:.1f} s. Dagster's runs stay in {pg_url}."
    )
    if differ:
        err.print(
            f"[red]{len(differ)} table(s) differ from the embedded demo:[/] {', '.join(differ)}"
        )
        return 1
    console.print(f"[green]All {len(comparisons)} tables equal the embedded demo's.[/]")
    return 0


def phases_table(result: DistributedResult):
    """The phases' wall times, with the load average they were measured at."""
    from rich.table import Table

    table = Table(title="Phases", title_justify="left")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for phase in result.phases:
        table.add_row(phase.name, f"{phase.seconds:.1f}")
    table.add_row("total, simulation included", f"{time.perf_counter() - result.started:.1f}")
    table.caption = f"load average {os.getloadavg()[0]:.1f}"
    return table


def _lake_env(running: Deployment) -> dict[str, str | None]:
    keys = [
        k for k in running.env if k.startswith(("AGENTOPS_LAKE_URI", "AGENTOPS_INDEX_URI", "AWS_"))
    ]
    return {"AGENTOPS_HOME": str(running.home), **{k: running.env[k] for k in keys}}


def paths_for(running: Deployment) -> Paths:
    """The deployment's layout, read from the environment the caller set with ``_lake_env``."""
    return Paths.from_env(running.home)


def _print_summary(paths: Paths, running: Deployment, result: DistributedResult, summary) -> None:
    """The embedded demo's summary, from the deployment's runs and lake."""
    from dagster import DagsterInstance
    from rich.table import Table

    from agentops_assets.cli import main as cli

    with (
        environment(**{k: running.env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_URL")}),
        DagsterInstance.get() as instance,
    ):
        outcome = run_outcome(instance, result.run_ids)
    runs = ", ".join(run_id[:8] for run_id in outcome.run_ids)
    table = Table(title=f"Dagster runs {runs} (through {len(running.processes)} processes)")
    table.add_column("asset / check")
    table.add_column("result")
    for name, line in outcome.lines:
        table.add_row(name, line)
    cli.console.print(table)
    cli._print_summary(paths)
    cli._print_memory_summary(paths, summary.incidents)
    cli._print_finops_summary(paths, summary.start)
    cli._print_drift_summary(paths, summary.incidents)
    cli._print_governance_summary(paths)
    cli._print_control_summary(paths)


# --- The same graph through an executor, without the daemon (the tests' path) ---


def execute_graph(
    paths: Paths,
    *,
    jobs: list[str] | None = None,
    days: list[str] | None = None,
    retry_of: str | None = None,
) -> list:
    """Run the embedded demo's sequence with ``execute_job`` on the configured executor.

    With ``AGENTOPS_EXECUTOR=celery`` and ``DAGSTER_HOME`` on the production profile, each step
    runs on a Celery worker and every run is recorded in PostgreSQL: the asset graph through
    real workers, without a daemon in the way (what the tests use). ``jobs`` picks parts of the
    sequence: ``assets`` (the unpartitioned assets), ``daily_job`` (one run per day with
    telemetry, or per day of ``days``), ``control_job``. ``retry_of`` names a failed run to
    re-execute from its failure first (its succeeded steps are not run again), as Dagster's
    "re-execute from failure" does. Runs carry this process as their owner, like
    ``agentops run``'s, so a crashed one is recognised and failed, and the pool slots of ended
    runs are freed first.

    Returns:
        The results, in order; stops at the first failed run.
    """
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from agentops_assets.cli.dagster_instance import owner_tags, recover_orphaned_runs
    from agentops_assets.cli.runner import finops_days
    from agentops_assets.definitions import defs

    repository = ReconstructableRepository.for_module(
        "agentops_assets.definitions", "defs", working_directory=str(Path.cwd())
    )
    owner = owner_tags()
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    results = []
    with dg.DagsterInstance.get() as instance:
        recover_orphaned_runs(instance)
        if retry_of is not None:
            failed = instance.get_run_by_id(retry_of)
            result = dg.execute_job(
                repository.get_reconstructable_job(failed.job_name),
                instance,
                run_config=run_config,
                tags={
                    **owner,
                    **{k: v for k, v in failed.tags.items() if k.startswith("dagster/")},
                },
                reexecution_options=dg.ReexecutionOptions.from_failure(retry_of, instance),
                raise_on_error=False,
            )
            results.append(result)
            if not result.success:
                return results
        for job in jobs if jobs is not None else ["assets", "daily_job", "control_job"]:
            if job == "assets":
                selection = [
                    spec.key
                    for spec in defs.resolve_all_asset_specs()
                    if spec.partitions_def is None and spec.group_name != CONTROL_GROUP
                ]
                runs = [("__ASSET_JOB", {}, selection)]
            elif job == "daily_job":
                keys = days or [
                    (first + timedelta(n)).isoformat()
                    for first, last in finops_days(paths)
                    for n in range((last - first).days + 1)
                ]
                runs = [("daily_job", {"dagster/partition": key}, None) for key in keys]
            else:
                runs = [(job, {}, None)]
            for name, tags, selection in runs:
                result = dg.execute_job(
                    repository.get_reconstructable_job(name),
                    instance,
                    run_config=run_config,
                    tags={**owner, **tags},
                    asset_selection=selection,
                    raise_on_error=False,
                )
                results.append(result)
                if not result.success:
                    return results
    return results
