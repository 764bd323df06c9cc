"""Materialize the asset graph in-process, recorded in the local Dagster instance."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from agentops_assets.cli.dagster_instance import (
    DAGSTER_YAML,
    open_instance,
    owner_tags,
    prepare_dagster_home,
    recover_orphaned_runs,
    release_runs_of_this_process,
    waiting_for,
)
from agentops_assets.storage.config import Paths

__all__ = [
    "DAGSTER_YAML",
    "Interrupted",
    "RunOutcome",
    "finops_days",
    "materialize_all",
    "prepare_dagster_home",
]

CONTROL_GROUP = "control"  # assets run once after the daily runs, deciding from their findings
WATCH_SECONDS = 2.0  # how often a waiting run checks its pool's holders
REPEAT_SECONDS = 30.0  # how often an unchanged "waiting for" sentence is said again


@dataclass
class RunOutcome:
    """What the in-process runs of one ``materialize_all`` did."""

    run_ids: list[str] = field(default_factory=list)
    success: bool = True
    seconds: float = 0.0
    lines: list[tuple[str, str]] = field(default_factory=list)  # (asset or check, summary)
    error: str | None = None


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped ``materialize_all``; its runs were failed and their slots freed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def materialize_all(
    paths: Paths, *, report: Callable[[str], None] = lambda message: None
) -> RunOutcome:
    """Materialize every asset (and run its checks) with ``$AGENTOPS_HOME/dagster`` as home.

    Runs kept in the instance's history: the unpartitioned assets (ingestion, memory), then
    one ``daily_job`` run per day that has telemetry (FinOps, drift, alerts, governance), then
    ``control_job`` (today's autonomy states, from those days' findings). Runs left behind by
    a dead process are failed first. The runs execute in a worker thread so that this (main)
    thread keeps the signals: it reports what a run waits for, and on SIGINT or SIGTERM fails
    this process's runs and frees their slots.

    Args:
        paths: The home to materialize.
        report: Called with a sentence for each recovered run and while a run waits.

    Raises:
        Interrupted: SIGINT or SIGTERM arrived; the caller should exit promptly.
    """
    outcome = RunOutcome()
    with open_instance(paths) as instance, _signals_interrupt() as received:
        try:
            for message in recover_orphaned_runs(instance):
                report(message)
            worker = threading.Thread(
                target=_materialize, args=(paths, instance, outcome), daemon=True
            )
            worker.start()
            _watch(worker, instance, report)
        except KeyboardInterrupt:
            signum = received[-1] if received else signal.SIGINT
            reason = f"agentops run (pid {os.getpid()}) stopped by {signal.Signals(signum).name}."
            for message in release_runs_of_this_process(instance, reason=reason):
                report(message)
            raise Interrupted(signum) from None
    return outcome


def _materialize(paths: Paths, instance, outcome: RunOutcome) -> None:
    from agentops_assets.definitions import defs

    started = time.perf_counter()
    # Assets log their progress at INFO; Dagster's own step events are DEBUG.
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    owner = owner_tags()
    try:
        # The control group decides from the days' findings: it runs after them.
        unpartitioned = [
            spec.key
            for spec in defs.resolve_all_asset_specs()
            if spec.partitions_def is None and spec.group_name != CONTROL_GROUP
        ]
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            raise_on_error=False,
            asset_selection=unpartitioned,
            run_config=run_config,
            tags=owner,
        )
        _collect(result, outcome)
        blocks = finops_days(paths) if result.success else []
        # One run per day: Dagster shows a ranged run's metadata on every partition of the
        # range (dagster-io/dagster#18123), so the UI's per-day plots need per-day runs.
        days = [
            first + timedelta(n) for first, last in blocks for n in range((last - first).days + 1)
        ]
        finops = RunOutcome()
        for day in days:
            result = defs.resolve_job_def("daily_job").execute_in_process(
                instance=instance,
                raise_on_error=False,
                tags={**owner, "dagster/partition": day.isoformat()},
                run_config=run_config,
            )
            _collect(result, finops)
            if not result.success:
                break
        merge_days(finops, outcome, len(days))
        if outcome.success:
            result = defs.resolve_job_def("control_job").execute_in_process(
                instance=instance, raise_on_error=False, tags=owner, run_config=run_config
            )
            _collect(result, outcome)
    except Exception as error:  # reported by the caller, as a failed run would be
        outcome.success = False
        outcome.error = f"{type(error).__name__}: {error}"
    outcome.seconds = time.perf_counter() - started


def _watch(worker: threading.Thread, instance, report: Callable[[str], None]) -> None:
    """Wait for the worker; say what its runs wait for, and recover runs that die meanwhile."""
    said, said_at = "", 0.0
    while worker.is_alive():
        worker.join(timeout=WATCH_SECONDS)
        if not worker.is_alive():
            break
        for message in recover_orphaned_runs(instance):
            report(message)
        waiting = " ".join(waiting_for(instance))
        if waiting and (waiting != said or time.monotonic() - said_at >= REPEAT_SECONDS):
            report(waiting)
            said, said_at = waiting, time.monotonic()


@contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt here; yields the signals received."""
    received: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {stop: signal.signal(stop, interrupt) for stop in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def finops_days(paths: Paths) -> list[tuple[date, date]]:
    """The days with telemetry within the FinOps partitions (from their start to today), as
    blocks of consecutive days: each block is one run, and a day without telemetry is in none."""
    from agentops_assets.defs.finops.partitions import PARTITIONS_START
    from agentops_assets.finops.refresh import event_days

    start, today = date.fromisoformat(PARTITIONS_START), datetime.now(UTC).date()
    blocks: list[tuple[date, date]] = []
    for day in event_days(paths):
        if not start <= day <= today:
            continue
        if blocks and (day - blocks[-1][1]).days == 1:
            blocks[-1] = (blocks[-1][0], day)
        else:
            blocks.append((day, day))
    return blocks


def _collect(result, outcome: RunOutcome) -> None:
    outcome.run_ids.append(result.run_id)
    outcome.success = outcome.success and result.success
    add_event_lines(result.all_events, outcome)


def add_event_lines(events, outcome: RunOutcome) -> None:
    """Add one run's summary lines to ``outcome``: each asset's last materialization, every
    check, and the error of a failed step (the run's Dagster events, in order)."""
    assets: dict[str, int] = {}  # asset -> its line: the last materialization describes it
    for event in events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            name = materialization.asset_key.to_user_string()
            # A range run logs each day, then its output on every day of the range: the
            # output, labelled with the range, comes last.
            line = (name, _summary(materialization.metadata))
            if name in assets:
                outcome.lines[assets[name]] = line
            else:
                assets[name] = len(outcome.lines)
                outcome.lines.append(line)
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            verdict = "passed" if check.passed else f"FAILED ({check.severity.value.lower()})"
            name = f"{check.asset_key.to_user_string()}:{check.check_name}"
            outcome.lines.append((name, f"{verdict}  {_summary(check.metadata)}"))
        elif event.is_step_failure:
            outcome.error = str(event.step_failure_data.error.message).strip()


def merge_days(days: RunOutcome, outcome: RunOutcome, count: int) -> None:
    """The per-day FinOps runs as a few lines: each asset's last day, every failed check."""
    outcome.run_ids += days.run_ids
    outcome.success = outcome.success and days.success
    outcome.error = outcome.error or days.error
    last: dict[str, str] = {}
    failed: list[tuple[str, str]] = []
    for name, summary in days.lines:
        last[name] = summary
        if summary.startswith("FAILED"):
            failed.append((name, summary))
    for name, summary in last.items():
        if summary.startswith("FAILED") or (name, summary) in failed:
            continue
        outcome.lines.append((name, summary))
    outcome.lines += failed
    if count > 1:
        outcome.lines.append(("daily_job", f"{count} daily runs"))


def _summary(metadata) -> str:
    parts = []
    for key, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            parts.append(f"{key}={raw:,}")
        elif isinstance(raw, str) and "\n" not in raw and len(raw) < 60:
            parts.append(f"{key}={raw}")
    return ", ".join(parts)
