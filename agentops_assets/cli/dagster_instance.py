"""The local Dagster instance under ``$AGENTOPS_HOME/dagster``: created once, never left stuck.

In-process runs (``agentops run``) carry the identity of the process that owns them in run
tags. Before a run starts, and while one waits for a pool slot, runs whose process is gone are
reported failed and every slot a finished run still holds is freed, so a crash never leaves a
pool claimed for good.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from filelock import FileLock

from agentops_assets.storage.config import Paths

# Nothing leaves the machine at run time, Dagster's usage statistics included; writers of one
# lake table take turns across runs (the concurrency pools on the writing assets). Run
# monitoring lets the daemon (`agentops ui`) fail runs stuck starting or cancelling and free
# the slots of runs that ended without freeing them.
DAGSTER_SETTINGS: dict = {
    "telemetry": {"enabled": False},
    "concurrency": {"pools": {"default_limit": 1}},
    "run_monitoring": {
        "enabled": True,
        "start_timeout_seconds": 180,
        "cancel_timeout_seconds": 180,
        "free_slots_after_run_end_seconds": 30,
        "poll_interval_seconds": 30,
    },
}
DAGSTER_YAML = yaml.safe_dump(DAGSTER_SETTINGS, sort_keys=False)

PID_TAG = "agentops/pid"
HOST_TAG = "agentops/host"
STARTED_TAG = "agentops/process_started"


def prepare_dagster_home(paths: Paths) -> Path:
    """``$AGENTOPS_HOME/dagster`` with its settings and storage; points ``DAGSTER_HOME`` at it.

    Settings missing from an existing ``dagster.yaml`` (written by an older version) are added;
    settings already there are kept.
    """
    with open_instance(paths):
        return paths.dagster_home


@contextmanager
def open_instance(paths: Paths) -> Iterator:
    """The Dagster instance of ``$AGENTOPS_HOME``, its sqlite storage created or migrated once.

    Two processes opening a fresh home at once would both create the tables (``table ...
    already exists``): a file lock makes them take turns until the storage exists.
    """
    import dagster as dg

    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["AGENTOPS_HOME"] = str(paths.home)
    with instance_lock(home):
        _write_settings(home / "dagster.yaml")
        instance = dg.DagsterInstance.get()
        # Storage is created lazily: touch each kind while the lock is held.
        instance.get_runs_count()
        instance.event_log_storage.get_concurrency_keys()
        instance.all_instigator_state()
    with instance:
        yield instance


def instance_lock(dagster_home: Path) -> FileLock:
    """The lock every opening of a fresh or older instance takes (another process's too)."""
    return FileLock(dagster_home / ".instance.lock")


def _write_settings(config: Path) -> None:
    current = (yaml.safe_load(config.read_text()) if config.exists() else None) or {}
    merged = _with_defaults(current, DAGSTER_SETTINGS)
    if merged != current or not config.exists():
        temporary = config.with_suffix(".yaml.tmp")
        temporary.write_text(yaml.safe_dump(merged, sort_keys=False))
        temporary.replace(config)


def _with_defaults(current: dict, defaults: dict) -> dict:
    merged = dict(current)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = _with_defaults(merged[key], value)
    return merged


# --- Which process owns a run ---


@dataclass(frozen=True)
class RunOwner:
    """The process that executes a run: ``started`` tells a live owner from a reused pid."""

    pid: int
    host: str
    started: float | None  # seconds since the epoch; None when unknown


def owner_tags() -> dict[str, str]:
    """Run tags naming this process as the owner of the runs it executes in-process."""
    pid = os.getpid()
    return {
        PID_TAG: str(pid),
        HOST_TAG: socket.gethostname(),
        STARTED_TAG: f"{_process_started(pid) or 0:.2f}",
    }


def run_owner(instance, record) -> RunOwner | None:
    """The owner of a run: from its tags, else from the pid in Dagster's engine events.

    Runs without the tags (an older ``agentops run``, or a run launched by the daemon) were
    executed by the pid their first engine event names; such a process must have started
    before the run did, or the pid was reused.
    """
    from dagster import DagsterEventType

    tags = record.dagster_run.tags
    if PID_TAG in tags:
        started = float(tags.get(STARTED_TAG) or 0) or None
        return RunOwner(int(tags[PID_TAG]), tags.get(HOST_TAG, socket.gethostname()), started)
    for entry in instance.all_logs(
        record.dagster_run.run_id, of_type=DagsterEventType.ENGINE_EVENT
    ):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None:
            return RunOwner(int(pid.value), socket.gethostname(), None)
    return None


def is_alive(owner: RunOwner, *, run_start: float | None = None) -> bool:
    """Whether the owning process still runs; owners on another host are taken as alive."""
    if owner.host != socket.gethostname():
        return True
    started = _process_started(owner.pid)
    if started is None:
        return False
    if owner.started is not None:
        return abs(started - owner.started) < 1.0
    return run_start is None or started <= run_start + 1.0


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # Linux, no such process
        try:  # No /proc: existence only, start time unknown.
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0
    # Field 22 is the start time in clock ticks after boot; the name (field 2) may hold spaces.
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return boot + ticks / os.sysconf("SC_CLK_TCK")


# --- Recovery and waiting ---


def recover_orphaned_runs(instance) -> list[str]:
    """Fail the runs whose process is gone; free the slots that finished runs still hold.

    Returns:
        One sentence per run failed or pool slot freed.
    """
    from dagster import DagsterRunStatus, RunsFilter

    messages = []
    active = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    for record in instance.get_run_records(filters=RunsFilter(statuses=active)):
        owner = run_owner(instance, record)
        if owner is None or is_alive(owner, run_start=record.start_time):
            continue
        run = record.dagster_run
        instance.report_run_failed(
            run,
            f"The process that ran it (pid {owner.pid} on {owner.host}) is gone: killed or "
            f"crashed. Marked failed by agentops (pid {os.getpid()}).",
        )
        messages.append(
            f"Run {run.run_id[:8]} ({run.job_name}): its process {owner.pid} is gone, "
            "so it is marked failed."
        )
    messages.extend(_free_slots_of_finished_runs(instance))
    return messages


def release_runs_of_this_process(instance, *, reason: str) -> list[str]:
    """Fail this process's unfinished runs and free their slots (on SIGTERM or Ctrl-C)."""
    messages = []
    for record in _runs_of_this_process(instance):
        instance.report_run_failed(record.dagster_run, reason)
        messages.append(f"Run {record.dagster_run.run_id[:8]} marked failed: {reason}")
    _free_slots_of_finished_runs(instance)
    return messages


def waiting_for(instance) -> list[str]:
    """What this process's runs wait for: one sentence per pool whose slots others hold."""
    mine = {record.dagster_run.run_id for record in _runs_of_this_process(instance)}
    if not mine:
        return []
    storage = instance.event_log_storage
    sentences = []
    for pool, info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).items():
        waiting = [
            step.step_key
            for step in info.pending_steps
            if step.run_id in mine and step.assigned_timestamp is None
        ]
        # A slot assigned to a step that has not claimed it yet is taken all the same.
        assigned = [step for step in info.pending_steps if step.assigned_timestamp is not None]
        holders = {
            (slot.run_id, slot.step_key): slot
            for slot in [*info.claimed_slots, *assigned]
            if slot.run_id not in mine
        }.values()
        if waiting and holders:
            held = "; ".join(_describe_holder(instance, slot) for slot in holders)
            sentences.append(
                f"Waiting for pool {pool} (limit {info.limit}) for {', '.join(waiting)}: "
                f"held by {held}."
            )
    return sentences


def _describe_holder(instance, slot) -> str:
    records = instance.get_run_records(filters=_run_filter(slot.run_id), limit=1)
    owner = run_owner(instance, records[0]) if records else None
    process = f", pid {owner.pid} on {owner.host}" if owner else ""
    return f"run {slot.run_id[:8]} (step {slot.step_key}{process})"


def _runs_of_this_process(instance) -> list:
    from dagster import RunsFilter
    from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES

    tags = owner_tags()
    mine = RunsFilter(statuses=NOT_FINISHED_STATUSES, tags={PID_TAG: tags[PID_TAG]})
    return [
        record
        for record in instance.get_run_records(filters=mine)
        if record.dagster_run.tags.get(STARTED_TAG) == tags[STARTED_TAG]
        and record.dagster_run.tags.get(HOST_TAG) == tags[HOST_TAG]
    ]


def _free_slots_of_finished_runs(instance) -> list[str]:
    storage = instance.event_log_storage
    holding = set(storage.get_concurrency_run_ids())
    for info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).values():
        holding.update(slot.run_id for slot in info.claimed_slots)
    messages = []
    for run_id in sorted(holding):
        records = instance.get_run_records(filters=_run_filter(run_id), limit=1)
        if records and not records[0].dagster_run.is_finished:
            continue
        storage.free_concurrency_slots_for_run(run_id)
        messages.append(f"Freed the pool slots of run {run_id[:8]}, which has ended.")
    return messages


def _run_filter(run_id: str):
    from dagster import RunsFilter

    return RunsFilter(run_ids=[run_id])
