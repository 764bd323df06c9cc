"""The ``agentops`` command."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentops_assets.cli.chaos import chaos
from agentops_assets.cli.control import control
from agentops_assets.cli.drift import anomalies, drift
from agentops_assets.cli.finops import finops
from agentops_assets.cli.governance import audit, policy, review
from agentops_assets.cli.memory import memory
from agentops_assets.cli.service import serve, token
from agentops_assets.cli.stream import stream
from agentops_assets.storage.config import Paths

console = Console()
err = Console(stderr=True)
DEMO_BASELINE_DAYS = 7  # incident-free days the demo starts with: drift's minimum history


def _paths() -> Paths:
    paths = Paths.from_env()
    # Dagster resources and child processes resolve the same home.
    os.environ["AGENTOPS_HOME"] = str(paths.home)
    return paths


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agentops-grid")
def main() -> None:
    """AgentOps Grid: the operations data platform for AI agents in production.

    Everything lives under $AGENTOPS_HOME (default ./data).

    \b
    Example:
      agentops demo
    """


@main.command()
@click.option("--agents", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--days", default=7, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--format",
    "fmt",
    default="jsonl",
    show_default=True,
    type=click.Choice(["jsonl", "otlp", "both"]),
    help="Native JSONL reasoning logs, OTLP JSON traces, or half the fleet each.",
)
@click.option(
    "--bad-fraction",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Share of malformed records mixed in.",
)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="First day (default: DAYS ago).")
@click.option(
    "--cycles-per-day",
    default=60,
    show_default=True,
    type=click.IntRange(min=1),
    help="Reasoning cycles per agent per day (about 10 events each).",
)
@click.option("--gzip", "gzip_", is_flag=True, help="Write .gz files.")
def simulate(
    agents: int,
    days: int,
    seed: int,
    fmt: str,
    bad_fraction: float,
    start,
    cycles_per_day: int,
    gzip_: bool,
) -> None:
    """Write a simulated agent fleet's telemetry into $AGENTOPS_HOME/landing.

    Deterministic for a seed and start day. Injected incidents' ground truth goes to
    $AGENTOPS_HOME/simulator/incidents.json, never into the landing folder.

    \b
    Example:
      agentops simulate --agents 20 --days 7 --seed 42 --format both --bad-fraction 0.01
    """
    paths = _paths()
    _require_local_landing(paths)
    summary = _simulate(
        paths,
        agents=agents,
        days=days,
        seed=seed,
        fmt=fmt,
        bad_fraction=bad_fraction,
        start=start.date() if start else None,
        cycles_per_day=cycles_per_day,
        gzip=gzip_,
    )
    console.print(
        f"Wrote [bold]{summary.events:,}[/] events and "
        f"{sum(summary.bad_records.values()):,} malformed records in {len(summary.files)} files "
        f"({summary.start} .. {summary.end}) to {paths.landing}"
    )
    console.print(f"Incidents' ground truth: {paths.simulator / 'incidents.json'}")


def _require_local_landing(paths: Paths) -> None:
    """The simulator writes files into a folder: refuse an object-store landing in one sentence."""
    if not paths.landing_is_local:
        raise click.ClickException(
            f"The simulator writes into a local folder, but AGENTOPS_LANDING_URI is "
            f"{paths.landing_uri}: unset it (or point it at a local path) to simulate, then copy "
            "the files under the prefix."
        )


def _simulate(paths: Paths, *, start: date | None, cycles_per_day: int, **options):
    from agentops_assets.simulator import simulate as run_simulation

    with _progress("Simulating the fleet") as (progress, task):

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            return run_simulation(
                paths.landing,
                paths.simulator,
                start=start,
                cycles_per_agent_day=cycles_per_day,
                progress=advance,
                **options,
            )
        except ValueError as error:
            raise click.BadParameter(str(error)) from None


def simulate_demo_fleet(paths: Paths, *, agents: int, days: int, seed: int):
    """The demo's fleet (both formats, a few malformed records, the incidents after the
    baseline week) into ``paths.landing``; the distributed demo simulates the same one."""
    return _simulate(
        paths,
        agents=agents,
        days=days,
        seed=seed,
        fmt="both",
        bad_fraction=0.005,
        start=None,
        cycles_per_day=60,
        gzip=False,
        first_incident_day=DEMO_BASELINE_DAYS if days > DEMO_BASELINE_DAYS else 1,
    )


@contextmanager
def _progress(description: str):
    """A progress bar on stderr; yields the bar and its task."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        yield progress, progress.add_task(description, total=None)


@main.command()
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    default="table",
    show_default=True,
    type=click.Choice(["table", "csv", "json"]),
)
@click.option(
    "--limit",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Most rows to print; 0 prints every row.",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds before the query is stopped; 0 waits for ever.",
)
def sql(query: str, fmt: str, limit: int, timeout: float) -> None:
    """Run a read-only SQL query; every Delta table is a view under its name.

    Several statements separated by ; run in turn and the last one's rows are printed.
    Statements that would write (EXPLAIN ANALYZE of one included) are refused.

    \b
    Example:
      agentops sql "SELECT agent_type, count(*) FROM agent_events GROUP BY 1"
      agentops sql "SELECT * FROM agent_events_quarantine LIMIT 5" --format json
      agentops sql "SELECT * FROM agent_events" --format csv --limit 0 > events.csv
    """
    import duckdb

    from agentops_assets.storage import lake
    from agentops_assets.storage.sql import QueryTimeoutError, run_query

    paths = _paths()
    try:
        result = run_query(paths, query, limit=limit or None, timeout=timeout or None)
    except QueryTimeoutError as error:
        raise click.ClickException(f"{error} Pass --timeout SECONDS (0 for none).") from None
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    except duckdb.Error as error:
        tables = ", ".join(lake.list_tables(paths)) or "none yet (run `agentops demo`)"
        message = str(error).splitlines()[0]
        raise click.ClickException(f"{message}\nTables: {tables}") from None
    frame = result.frame
    if fmt == "csv":
        click.echo(frame.write_csv(), nl=False)
    elif fmt == "json":
        click.echo(frame.write_json())
    else:
        _print_rows(frame)
    if result.truncated:
        # On stderr, so that csv and json output stays parseable.
        err.print(
            f"Showing the first {limit:,} rows; the query returned more. "
            "Add a LIMIT, or pass --limit 0 for every row."
        )


# Narrowest a column may get before rich squashes its values out of sight.
_MIN_COLUMN = 10


def _print_rows(frame) -> None:
    """Print rows as a table, or one block per record when the table cannot fit the terminal."""
    if _fits(frame, console.width):
        console.print(_table(frame))
        return
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        block = Table.grid(padding=(0, 1))
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        for name, value in row.items():
            block.add_row(f"{name}:", "" if value is None else _cell(value))
        console.rule(f"record {number}", align="left", characters="-")
        console.print(block, markup=False)
    err.print(
        f"{frame.width} columns do not fit in {console.width} characters, so each record is "
        "printed as a block of 'column: value' lines; pass --format csv for one line per row.",
        markup=False,
        soft_wrap=True,
    )


def _fits(frame, width: int) -> bool:
    """Whether every column gets at least ``_MIN_COLUMN`` characters (or its widest value)."""
    needed = 1  # the left border
    for name in frame.columns:
        cells = [len(_cell(v)) for v in frame[name].head(200) if v is not None]
        needed += min(max([len(name), *cells]), _MIN_COLUMN) + 3  # padding and border
    return needed <= width


def _table(frame, title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        table.add_column(name, justify="right" if frame.schema[name].is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else _cell(v) for v in row))
    return table


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@main.command()
def run() -> None:
    """Materialize every asset in-process through Dagster.

    Runs use $AGENTOPS_HOME/dagster as DAGSTER_HOME, so they appear in the UI's history.

    \b
    Example:
      agentops run
    """
    paths = _paths()
    if not _materialize_all(paths):
        raise SystemExit(1)
    if not _has_telemetry(paths):
        err.print(
            f"No telemetry yet: the landing {paths.landing_uri} holds no events. "
            "Run `agentops simulate` to write a sample, or drop JSONL files there, "
            "then `agentops run` again.",
            markup=False,
            soft_wrap=True,
        )


def _has_telemetry(paths: Paths) -> bool:
    """Whether agent_events holds at least one row."""
    from agentops_assets.storage import lake
    from agentops_assets.telemetry.schema import AGENT_EVENTS

    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    return events is not None and events.head(1).collect().height > 0


def _materialize_all(paths: Paths, expected: dict[str, str] | None = None) -> bool:
    """Run the whole asset graph once; prints what each asset and check produced.

    Args:
        paths: The home to materialize.
        expected: Check names whose failure is expected, with the reason shown beside them.
    """
    from agentops_assets.cli.runner import Interrupted, materialize_all

    err.print(f"Materializing every asset through Dagster (runs kept in {paths.dagster_home})")
    try:
        outcome = materialize_all(
            paths, report=lambda message: err.print(message, soft_wrap=True, markup=False)
        )
    except Interrupted as stop:
        err.print(f"[red]Stopped by {stop}.[/] Its runs are marked failed, their slots freed.")
        sys.stdout.flush()
        sys.stderr.flush()
        # The runs' worker thread may be inside a step: leave now, as a kill would.
        os._exit(128 + stop.signum)
    runs = ", ".join(run_id[:8] for run_id in outcome.run_ids)
    table = Table(title=f"Dagster runs {runs} ({outcome.seconds:.1f} s)")
    table.add_column("asset / check")
    table.add_column("result")
    for name, summary in outcome.lines:
        check = name.rpartition(":")[2]
        verdict, _, rest = summary.partition("  ")
        if expected and check in expected and verdict != "passed":
            summary = f"{verdict} ({expected[check]})  {rest}"
        table.add_row(name, summary)
    console.print(table)
    if not outcome.success:
        err.print(f"[red]The run failed:[/] {outcome.error}")
    return outcome.success


@main.command()
@click.option("--port", default=3000, show_default=True, type=click.IntRange(1, 65535))
def ui(port: int) -> None:
    """Start the Dagster webserver and daemon on 127.0.0.1 with this code location.

    Ctrl-C stops both.

    \b
    Example:
      agentops ui --port 3000
    """
    from agentops_assets.cli.runner import prepare_dagster_home

    env = {**os.environ, "DAGSTER_HOME": str(prepare_dagster_home(_paths()))}
    command = [
        sys.executable, "-m", "dagster", "dev",
        "-m", "agentops_assets.definitions",
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    # Its own session, so Ctrl-C here stops the webserver and the daemon together.
    # Handle SIGINT and SIGTERM even when started in the background, where SIGINT arrives
    # ignored; handled (not ignored) signals also reach the children with default actions.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _interrupt)
    process = subprocess.Popen(command, env=env, start_new_session=True)
    console.print(f"Dagster UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
    try:
        process.wait()
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@main.command()
@click.option("--agents", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--days", default=14, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--distributed",
    is_flag=True,
    help="Run it through Dagster's production deployment started locally (S3 server, "
    "PostgreSQL storage, webserver, daemon, code server, two Celery workers), then compare "
    "its tables with the embedded demo's.",
)
def demo(agents: int, days: int, seed: int, distributed: bool) -> None:
    """Simulate two weeks of a 20-agent fleet, materialize every asset, print a summary.

    The first week is a clean baseline; the incidents fall in the second, where drift
    detection (which judges a day against at least 7 days before it) can find them.

    With --distributed, the fleet goes into $AGENTOPS_HOME/distributed and through a local
    deployment (PostgreSQL from AGENTOPS_PG_URL, the Celery broker from AGENTOPS_CELERY_BROKER);
    the demo exits non-zero if any table differs from the embedded demo's.

    \b
    Example:
      AGENTOPS_HOME=/tmp/agentops agentops demo
      AGENTOPS_HOME=/tmp/agentops agentops demo --distributed
    """
    if distributed:
        from agentops_assets.cli.distributed import demo_distributed

        _require_local_landing(_paths())
        raise SystemExit(demo_distributed(agents, days, seed))
    paths = _paths()
    _require_local_landing(paths)
    started = time.perf_counter()
    summary = simulate_demo_fleet(paths, agents=agents, days=days, seed=seed)
    console.print(
        f"Simulated {summary.events:,} events and {sum(summary.bad_records.values()):,} "
        f"malformed records from {agents} agents over {days} days into {paths.landing}"
    )
    incidents = Table(title="Injected incidents (ground truth, not in the landing folder)")
    for column in ("incident", "day", "agent type", "what happened"):
        incidents.add_column(column)
    for incident in summary.incidents:
        incidents.add_row(
            incident["name"],
            incident["day"],
            incident.get("agent_type") or "-",
            incident["description"],
        )
    console.print(incidents)
    _seed_knowledge(paths)
    injected = {incident["name"] for incident in summary.incidents}
    expected = {}
    if "cost_spike" in injected:
        expected["budget_within_caps"] = "expected: the injected cost spike"
    if injected & {"confidence_drift", "cost_spike", "outage", "corrupted_context"}:
        expected["no_critical_drift"] = "expected: the injected incidents"
    # A few unusual cycles a day are normal (well under 1 %); the rogue agent adds its own.
    expected["no_behavior_anomalies"] = "expected: the rogue agent and a few unusual cycles"
    if "rogue_agent" in injected:
        expected["no_capability_violations"] = "expected: the rogue agent's calls"
    ok = _materialize_all(paths, expected)
    _print_summary(paths)
    _print_memory_summary(paths, summary.incidents)
    _print_finops_summary(paths, summary.start)
    _print_drift_summary(paths, summary.incidents)
    _print_governance_summary(paths)
    _print_control_summary(paths)
    console.print(f"Done in {time.perf_counter() - started:.1f} s.")
    if not ok:
        raise SystemExit(1)


def _print_finops_summary(paths: Paths, first_day: date) -> None:
    """Spend, ROI and budget status for the month, and every budget finding of the week."""
    from agentops_assets.cli.finops_report import print_report

    console.print()
    try:
        print_report(paths, period="month", day=None, findings_from=first_day)
    except click.ClickException as error:
        err.print(f"[yellow]No FinOps report:[/] {error.message}")


def _print_drift_summary(paths: Paths, incidents: list[dict]) -> None:
    """What the simulator injected beside what drift and anomaly detection found, and when."""
    import polars as pl

    from agentops_assets.drift.evaluation import match_incidents
    from agentops_assets.drift.refresh import drift_policy
    from agentops_assets.drift.tables import BEHAVIOR_ANOMALIES, DRIFT_FINDINGS
    from agentops_assets.finops.refresh import event_date_range
    from agentops_assets.storage import lake

    frames = [lake.scan(paths.table_uri(name)) for name in (DRIFT_FINDINGS, BEHAVIOR_ANOMALIES)]
    if any(frame is None for frame in frames):
        return
    findings, anomalies = (frame.collect() for frame in frames)
    history = drift_policy(paths).min_history_days
    data = event_date_range(paths)
    judged_from = data[0] + timedelta(days=history) if data else None
    matches = match_incidents(incidents, findings, anomalies, judged_from=judged_from)
    table = Table(title="Injected incidents and what detection found", title_justify="left")
    for column in ("incident", "started", "agent or type", "found"):
        table.add_column(column, overflow="fold")
    evidence = []
    for row in matches.iter_rows(named=True):
        found, why = _verdict(row, history)
        table.add_row(row["incident"], str(row["day"]), row["target"], found)
        evidence.append(f"  [bold]{row['incident']}[/]: {why}")
    console.print()
    console.print(
        f"[bold]Drift[/]: {findings.height:,} findings "
        f"({findings.filter(pl.col('severity') == 'critical').height:,} critical) and "
        f"{anomalies.height:,} anomalous cycles over the simulated days"
    )
    console.print(table)
    for line in evidence:
        console.print(line)
    if not findings.is_empty():
        last = findings["day"].max()
        console.print(f"  Details: agentops drift report --date {last}; agentops anomalies")


def _print_governance_summary(paths: Paths) -> None:
    """Decisions by zone, the capability violations, the queue, the ledger, and one violation
    traced end to end."""
    import polars as pl

    from agentops_assets.cli.governance import print_trace
    from agentops_assets.governance.audit import ledger
    from agentops_assets.governance.review import reviews
    from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS, POLICY_DECISIONS
    from agentops_assets.governance.trace import trace
    from agentops_assets.storage import lake

    decided = lake.scan(paths.table_uri(POLICY_DECISIONS))
    if decided is None:
        return
    zones = dict(decided.group_by("zone").len().collect().iter_rows())
    violations = lake.scan(paths.table_uri(CAPABILITY_VIOLATIONS))
    found = violations.sort("day", "event_id").collect() if violations is not None else None
    report = ledger(paths).verify()
    pending = reviews(paths, "pending").height
    console.print(
        f"\n[bold]Governance[/]: {sum(zones.values()):,} actions judged: "
        f"{zones.get('green', 0):,} green, {zones.get('yellow', 0):,} yellow, "
        f"{zones.get('red', 0):,} red; {pending:,} waiting in the review queue; audit ledger "
        f"{'holds' if report.ok else '[red]FAILS[/]'} ({report.checked:,} entries)"
    )
    if found is None or found.is_empty():
        return
    pairs = found.group_by("agent_id", "action").agg(pl.len().alias("calls")).sort("agent_id")
    named = ", ".join(
        f"{row['agent_id']} called {row['action']} x{row['calls']}"
        for row in pairs.iter_rows(named=True)
    )
    first = found.row(0, named=True)
    console.print(f"  {found.height} capability violation(s): {named}")
    console.print(f"\n$ agentops audit trace {first['event_id']}")
    print_trace(trace(paths, first["event_id"]))
    item = reviews(paths).filter(pl.col("event_id") == first["event_id"])
    if item.height:
        console.print(
            f"  Decide it: agentops review reject {item['review_id'][0]} --rationale "
            f'"{first["action"]} is outside the {first["agent_type"]} role"\n'
            "  agentops review list; agentops audit verify"
        )


def _print_control_summary(paths: Paths) -> None:
    """Who is restricted now and why, and the commands that see and lift it."""
    import polars as pl

    from agentops_assets.control.output import control_path
    from agentops_assets.control.tables import AUTONOMY_STATE
    from agentops_assets.storage import lake

    frame = lake.scan(paths.table_uri(AUTONOMY_STATE))
    if frame is None:
        return
    states = frame.collect()
    restricted = states.filter(pl.col("state") != "normal")
    agents = restricted.filter(pl.col("agent_id").is_not_null())
    console.print(
        f"\n[bold]Autonomy[/] today: {agents.height} of "
        f"{states.filter(pl.col('agent_id').is_not_null()).height} agents restricted; "
        f"runtimes read {control_path(paths)}"
    )
    # Types, and agents restricted by their own evidence (not only through their type).
    shown = restricted.filter(
        (pl.col("rule") != "agent_type") | pl.col("reason").str.contains("its own state")
    )
    for row in shown.iter_rows(named=True):
        who = row["agent_id"] or f"every {row['agent_type']}"
        until = f" until {row['until']}" if row["until"] else ""
        console.print(f"  {who}: [bold]{row['state']}[/]{until} ({row['reason']})")
    if shown.height:
        console.print("  agentops control status")
        for row in shown.head(3).iter_rows(named=True):
            subject = row["agent_id"] or row["agent_type"]
            console.print(f'  agentops control release {subject} --reason "..."')


def _verdict(row: dict, history: int) -> tuple[str, str]:
    """The found and evidence cells of one incident of the demo's detection table."""
    if not row["behavioural"]:
        return "-", "a memory incident: see the Memory section above"
    if row["found"]:
        when = "same day" if row["delay_days"] == 0 else f"{row['delay_days']} day later"
        source = "drift" if row["by"] == "drift_findings" else "anomalies"
        return f"[green]yes[/], {when} ({source})", row["evidence"]
    if row["too_early"]:
        return "-", f"before {history} days of history: not judged"
    return "[red]no[/]", "nothing within a day of its start"


def _seed_knowledge(paths: Paths) -> None:
    """Give an empty knowledge folder the example handbook (refunds, FX, support, runbook)."""
    if paths.knowledge.exists() and any(paths.knowledge.iterdir()):
        return
    examples = Path(__file__).parents[1] / "examples" / "knowledge"
    shutil.copytree(examples, paths.knowledge, dirs_exist_ok=True)
    console.print(f"Copied the example knowledge documents into {paths.knowledge}")


def _print_memory_summary(paths: Paths, incidents: list[dict]) -> None:
    """Memory in numbers, and how to find and undo the wrong lesson the simulator planted."""
    from agentops_assets.memory_feed.feed import FEED_AUTHOR
    from agentops_assets.storage.sql import query
    from memory import TABLE_NAME, MemoryStore

    store = MemoryStore(paths.table_uri(TABLE_NAME))
    if store.version() is None:
        return
    commits = store.log(limit=1 << 62)
    facts = store.frame()
    console.print(
        f"\n[bold]Memory[/]: {facts.height:,} facts of {facts['agent_id'].n_unique()} agents, "
        f"{len(commits):,} commits ({sum(c.approved_by is not None for c in commits)} approved "
        f"corrections), memory version v{store.version()}"
    )
    lesson = next((i for i in incidents if i["name"] == "wrong_lesson"), None)
    if lesson is None:
        return
    agent, details = lesson["agent_ids"][0], lesson["details"]
    trace = query(
        paths,
        f"SELECT trace_id FROM agent_events WHERE event_id = '{details['wrong_event_id']}'",
    )
    wrong = next(
        (
            c
            for c in commits
            if trace.height and c.cycle_id == trace.item() and c.author == FEED_AUTHOR
        ),
        None,
    )
    if wrong is None:
        return
    key = details["fact_key"]
    now = next((f.content for f in store.as_of(agent) if f.fact_id == key), None)
    undo = (
        f"  agentops memory revert {agent} {wrong.version} "
        f'--reason "wrong refund lesson"   # undoes only v{wrong.version}, keeps later commits'
        if now == details["wrong_content"]
        else f"  (already corrected since: {key} = {now!r}; see `agentops memory log {agent}`)"
    )
    console.print(
        f"[bold]A wrong lesson[/]: at v{wrong.version} {agent} learned "
        f"{key} = {details['wrong_content']!r}\n"
        f"  agentops memory diff {agent} {wrong.version - 1} {wrong.version}\n"
        f"  agentops memory show {agent} --as-of {wrong.version}\n{undo}"
    )


def _print_summary(paths: Paths) -> None:
    from agentops_assets.storage import lake
    from agentops_assets.storage.sql import query

    tables = lake.list_tables(paths)
    counts = (
        query(
            paths,
            " UNION ALL ".join(
                f"SELECT '{name}' AS table_name, count(*) AS rows FROM {name}" for name in tables
            ),
        )
        if tables
        else None
    )
    if counts is not None:
        console.print(_table(counts, title="Tables (agentops sql)"))
    if "agent_events_quarantine" in tables:
        reasons = query(
            paths,
            "SELECT reason, count(*) AS records FROM agent_events_quarantine "
            "GROUP BY 1 ORDER BY 2 DESC",
        )
        console.print(_table(reasons, title="Quarantined records by reason"))
    console.print(
        "\n[bold]Where to look next[/]\n"
        '  agentops sql "SELECT agent_type, kind, count(*) FROM agent_events GROUP BY ALL"\n'
        '  agentops sql "SELECT source_file, record_index, reason, detail '
        'FROM agent_events_quarantine LIMIT 10"\n'
        "  agentops memory log --limit 10\n"
        "  agentops finops report --period month\n"
        "  agentops ui        # assets, checks, sensors and run history on http://127.0.0.1:3000\n"
        "  agentops token create me --role admin && agentops serve"
        "   # the console on http://127.0.0.1:4318\n"
        f"  {paths.simulator / 'incidents.json'}   # the incidents the simulator injected"
    )


main.add_command(memory)
main.add_command(finops)
main.add_command(drift)
main.add_command(anomalies)
main.add_command(policy)
main.add_command(review)
main.add_command(audit)
main.add_command(control)
main.add_command(chaos)
main.add_command(serve)
main.add_command(token)
main.add_command(stream)

if __name__ == "__main__":
    main()
