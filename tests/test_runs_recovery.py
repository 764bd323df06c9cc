"""Never stuck: real ``agentops run`` processes killed, signalled and started side by side.

Each test drives the CLI as a real subprocess over a small simulated fleet; kills land while a
run holds the ``agentops_lake_writers`` slot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from dagster._core.utils import make_new_run_id

from agentops_assets.cli.dagster_instance import instance_lock, open_instance, owner_tags
from agentops_assets.cli.runner import prepare_dagster_home
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

POOL = "agentops_lake_writers"
RUN_TIMEOUT = 180  # seconds; a hung run fails the test instead of hanging it


def _agentops(home: Path, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "AGENTOPS_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "agentops_assets", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def _finish(process: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"`agentops` did not finish within {timeout} s:\n{output[-3000:]}")
    return process.returncode, output


def _simulated(home: Path) -> Path:
    code, output = _finish(
        _agentops(home, "simulate", "--agents", "3", "--days", "2", "--seed", "1",
                  "--cycles-per-day", "15", start_new_session=True)
    )  # fmt: skip
    assert code == 0, output
    return home


def _instance(home: Path) -> dg.DagsterInstance:
    # The lock `agentops run` holds while it creates the storage: never open it half made.
    with instance_lock(home / "dagster"):
        return dg.DagsterInstance.from_config(str(home / "dagster"))


def _wait_for_claimed_slot(home: Path, process: subprocess.Popen) -> str:
    """The run id holding the lake writers' slot, once a run of ``process`` holds it."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0][-3000:]
        if (home / "dagster" / "dagster.yaml").exists():
            with _instance(home) as instance:
                claimed = instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
            if claimed:
                return claimed[0].run_id
        time.sleep(0.1)
    pytest.fail("no run claimed the lake writers' slot")


class _Output:
    """Reads a process's output in a thread, so a test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.lines = process, []
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(iter(process.stdout.readline, "")), daemon=True
        )
        self.reader.start()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, *, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            if time.monotonic() > deadline or not self.reader.is_alive():
                os.killpg(self.process.pid, signal.SIGKILL)
                pytest.fail(f"no {text!r} from agentops run:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        return self.text()

    def exit_code(self, *, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail(f"agentops run still running {timeout} s later:\n{self.text()[-3000:]}")
        self.reader.join()
        return code


def _status(home: Path, run_id: str) -> dg.DagsterRunStatus:
    with _instance(home) as instance:
        return instance.get_run_by_id(run_id).status


def test_a_run_killed_mid_run_is_failed_and_the_next_run_completes(tmp_path: Path) -> None:
    """SIGKILL of the whole process group while a run holds the slot: the next run recovers."""
    home = _simulated(tmp_path / "home")
    first = _agentops(home, "run", start_new_session=True)
    killed_run = _wait_for_claimed_slot(home, first)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()

    code, output = _finish(_agentops(home, "run", start_new_session=True))

    assert code == 0, output[-3000:]
    assert f"Run {killed_run[:8]}" in output  # the recovery is said, not silent
    assert _status(home, killed_run) == dg.DagsterRunStatus.FAILURE
    with _instance(home) as instance:
        assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_waiting_run_says_what_it_waits_for_and_stops_on_a_signal(
    paths: Paths, stop: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live run holds the slot: the next run names it while waiting, and a real SIGTERM or
    SIGINT stops it promptly without leaving a slot or a pending step behind."""
    monkeypatch.setenv("DAGSTER_HOME", str(paths.dagster_home))  # open_instance sets it
    _simulated(paths.home)
    with open_instance(paths) as instance:
        holder = instance.add_run(
            dg.DagsterRun(
                job_name="holder", run_id=make_new_run_id(), tags=owner_tags(),
                status=dg.DagsterRunStatus.STARTED,
            )
        )  # fmt: skip
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(POOL)
        assert storage.claim_concurrency_slot(POOL, holder.run_id, "holding_step").is_claimed
    waiting = _agentops(paths.home, "run", start_new_session=True)
    output = _Output(waiting)
    said = output.wait_for("Waiting for pool", timeout=RUN_TIMEOUT)
    assert f"held by run {holder.run_id[:8]} (step holding_step, pid {os.getpid()}" in said

    os.kill(waiting.pid, stop)
    code = output.exit_code(timeout=20)

    assert code == 128 + stop, output.text()
    assert f"Stopped by {stop.name}" in output.text()
    with open_instance(paths) as instance:
        info = instance.event_log_storage.get_concurrency_info(POOL)
        assert {slot.run_id for slot in info.claimed_slots} == {holder.run_id}
        assert {step.run_id for step in info.pending_steps} == {holder.run_id}
        left = [r for r in instance.get_runs() if r.run_id != holder.run_id]
        assert left and all(r.status == dg.DagsterRunStatus.FAILURE for r in left)
        instance.report_run_failed(holder)  # the holder ends: its slot is freed by the next run
    code, output = _finish(_agentops(paths.home, "run", start_new_session=True))
    assert code == 0, output[-3000:]


def test_two_runs_on_a_fresh_home_both_succeed(tmp_path: Path) -> None:
    """Two `agentops run` at once on a fresh home, three rounds: the instance is created once,
    both succeed, and the tables equal one run's."""
    reference = _simulated(tmp_path / "reference")
    code, output = _finish(_agentops(reference, "run", start_new_session=True))
    assert code == 0, output[-3000:]
    for round_ in range(3):
        home = _simulated(tmp_path / f"round-{round_}")
        pair = [_agentops(home, "run", start_new_session=True) for _ in range(2)]
        for code, output in [_finish(process) for process in pair]:
            assert code == 0, output[-3000:]
        for table in ("agent_events", "agent_events_quarantine", "memory_facts"):
            assert _rows(home, table) == _rows(reference, table), table


# Imports first, then opens the home the way `agentops run` and `agentops ui` do, all at once.
_OPEN_AT_ONCE = """
import pathlib, sys, time
import dagster as dg
from agentops_assets.storage.config import Paths
from agentops_assets.cli.runner import prepare_dagster_home
go = pathlib.Path(sys.argv[1])
pathlib.Path(sys.argv[2]).touch()
while not go.exists():
    time.sleep(0.002)
prepare_dagster_home(Paths.from_env())
with dg.DagsterInstance.get() as instance:
    instance.get_runs_count()
    instance.event_log_storage.get_concurrency_keys()
    instance.all_instigator_state()
"""


def test_processes_opening_a_fresh_home_at_once_all_succeed(tmp_path: Path) -> None:
    """Six processes released together on a fresh home, five times: none sees a half-created
    sqlite storage (`table ... already exists`)."""
    for round_ in range(5):
        home, go = tmp_path / f"home-{round_}", tmp_path / f"go-{round_}"
        ready = [tmp_path / f"ready-{round_}-{n}" for n in range(6)]
        env = {**os.environ, "AGENTOPS_HOME": str(home), "PYTHONWARNINGS": "ignore"}
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_AT_ONCE, str(go), str(flag)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            for flag in ready
        ]  # fmt: skip
        deadline = time.monotonic() + RUN_TIMEOUT
        while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()
        for process in processes:
            output, _ = process.communicate(timeout=RUN_TIMEOUT)
            assert process.returncode == 0, output[-3000:]


def _rows(home: Path, table: str) -> list[tuple]:
    paths = Paths.from_env(home)
    frame = pl.read_delta(paths.table_uri(table)) if table in lake.list_tables(paths) else None
    if frame is None:
        return []
    # Only what the data says: ingest times and file paths differ between homes.
    keep = [c for c in frame.columns if not c.endswith(("_at", "source_file", "committed"))]
    return sorted(frame.select(keep).rows(), key=repr)


def test_an_older_dagster_yaml_gets_the_new_settings(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dagster.yaml written by an older version gains run monitoring; its own values stay."""
    monkeypatch.setenv("DAGSTER_HOME", str(paths.dagster_home))  # prepare_dagster_home sets it
    paths.dagster_home.mkdir(parents=True)
    config = paths.dagster_home / "dagster.yaml"
    config.write_text("concurrency:\n  pools:\n    default_limit: 2\n")

    prepare_dagster_home(paths)

    settings = yaml.safe_load(config.read_text())
    assert settings["run_monitoring"]["enabled"] is True
    assert settings["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert settings["concurrency"]["pools"]["default_limit"] == 2
    with _instance(paths.home) as instance:
        assert instance.run_monitoring_enabled
