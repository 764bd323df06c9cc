"""Sensors ask again, a bounded number of times, for work whose run failed."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from agentops_assets.definitions import defs
from agentops_assets.defs.memory.sensors import knowledge_sensor
from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.retry_policy import MAX_RUNS, Attempt, Request, next_request
from agentops_assets.defs.telemetry.sensors import landing_sensor
from agentops_assets.storage.config import Paths
from tests.conftest import event, write_jsonl

WORDS = {"what": "the refresh", "fix_hint": "run `agentops run`", "backoff_seconds": 60.0}


def test_a_new_state_is_requested_under_its_own_key() -> None:
    assert next_request(key="k", cursor=None, latest=None, now=0, **WORDS) == Request("k", 0)
    waiting = next_request(key="k", cursor="k", latest=None, now=0, **WORDS)
    assert "requested and not started yet" in waiting


def test_a_failed_run_is_retried_after_a_back_off_that_doubles() -> None:
    failed = Attempt(number=0, state="failure", ended_at=1000.0)
    early = next_request(key="k", cursor="k", latest=failed, now=1030.0, **WORDS)
    assert (
        early
        == "The run for the refresh failed (run 1 of at most 3); retrying in 30 s as k-retry-1."
    )
    assert next_request(key="k", cursor="k", latest=failed, now=1060.0, **WORDS) == Request(
        "k-retry-1", 1
    )
    second = Attempt(number=1, state="failure", ended_at=2000.0)
    assert isinstance(next_request(key="k", cursor="k", latest=second, now=2100.0, **WORDS), str)
    assert next_request(key="k", cursor="k", latest=second, now=2120.0, **WORDS) == Request(
        "k-retry-2", 2
    )


def test_retries_stop_after_the_last_run_and_say_what_to_do() -> None:
    last = Attempt(number=MAX_RUNS - 1, state="failure", ended_at=0.0)
    reason = next_request(key="k", cursor="k", latest=last, now=1e9, **WORDS)
    assert reason == (
        "Gave up after 3 failed runs of the refresh (k); fix the cause, then run `agentops run`."
    )


@pytest.mark.parametrize(
    ("state", "says"),
    [("in_progress", "is in progress"), ("success", "succeeded"), ("canceled", "was canceled")],
)
def test_no_retry_unless_the_run_failed(state: str, says: str) -> None:
    latest = Attempt(number=0, state=state, ended_at=0.0)
    assert says in next_request(key="k", cursor="k", latest=latest, now=1e9, **WORDS)


def _blocked(paths: Paths, table: str) -> None:
    """A plain file where the table's folder goes: every write of that table fails."""
    blocker = Path(paths.table_uri(table))
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a Delta table")


def _landing(paths: Paths) -> tuple[str, str]:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(5)])
    _blocked(paths, "agent_events")
    return "ingest_job", "telemetry_ingestion"


def _knowledge(paths: Paths) -> tuple[str, str]:
    paths.knowledge.mkdir(parents=True)
    (paths.knowledge / "refunds.md").write_text("# Refunds\n\nRefunds above $500 need approval.\n")
    _blocked(paths, "knowledge_chunks")
    return "knowledge_job", "knowledge_chunks"


def _tick(sensor, instance, cursor: str | None, lake: LakeResource, *, at: float | None = None):
    """One evaluation of the sensor (at a later time, past the back-off, if ``at`` is given)."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake})
    if at is None:
        return sensor(context), context.cursor
    with freeze_time(at):
        return sensor(context), context.cursor


@pytest.mark.parametrize(
    ("sensor", "setup"), [(landing_sensor, _landing), (knowledge_sensor, _knowledge)]
)
def test_a_sensor_requests_again_after_its_run_failed(paths: Paths, sensor, setup) -> None:
    """Real failed runs of the sensor's job on a real instance: two retries after a back-off,
    then a skip reason that says it gave up and what to do."""
    job_name, step = setup(paths)  # the job, and the step of it that fails
    job = defs.resolve_job_def(job_name)
    lake = LakeResource(home=str(paths.home))
    keys, attempts, cursor = [], [], None
    with dg.instance_for_test() as instance:
        for attempt in range(MAX_RUNS):
            request, cursor = _tick(sensor, instance, cursor, lake, at=time.time() + 3600 * attempt)
            assert isinstance(request, dg.RunRequest), request
            keys.append(request.run_key)
            attempts.append(request.tags.get("agentops/attempt"))
            result = job.execute_in_process(
                instance=instance,
                tags={**request.tags, "dagster/run_key": request.run_key},
                raise_on_error=False,
            )
            assert not result.success
            assert {e.step_key for e in result.all_events if e.is_step_failure} == {step}
            if attempt == 0:  # right after the failure: the back-off is said
                soon, _ = _tick(sensor, instance, cursor, lake)
                assert "retrying in" in soon.skip_message
        gave_up, _ = _tick(sensor, instance, cursor, lake, at=time.time() + 3600 * MAX_RUNS)
    assert keys[1:] == [f"{keys[0]}-retry-1", f"{keys[0]}-retry-2"]
    assert attempts == ["0", "1", "2"]
    assert isinstance(gave_up, dg.SkipReason)
    assert gave_up.skip_message.startswith("Gave up after 3 failed runs of ")
    assert "fix the cause, then" in gave_up.skip_message
