"""When a sensor asks again for work whose run failed: bounded retries with a back-off.

A sensor's run key is the fingerprint of the state it saw, so without this a failed run would
never be requested again until the state changed. Knows nothing of Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_RUNS = 3  # the first run and two retries
BACKOFF_SECONDS = 60.0  # before the first retry; doubles for each later one

RunState = Literal["in_progress", "success", "failure", "canceled"]


@dataclass(frozen=True)
class Attempt:
    """The latest run a sensor requested for one state."""

    number: int  # 0 for the first run, n for the n-th retry
    state: RunState
    ended_at: float | None = None  # seconds since the epoch


@dataclass(frozen=True)
class Request:
    """Request a run with this key; ``attempt`` 0 is the first run of a state."""

    run_key: str
    attempt: int


def next_request(
    *,
    key: str,
    cursor: str | None,
    latest: Attempt | None,
    now: float,
    what: str,
    fix_hint: str,
    max_runs: int = MAX_RUNS,
    backoff_seconds: float = BACKOFF_SECONDS,
) -> Request | str:
    """Whether to request a run for the state ``key``, or why not.

    Args:
        key: The fingerprint of the state the sensor sees; the first run's key.
        cursor: The key last requested (the sensor's cursor).
        latest: The latest run requested for ``key``, if any exists yet.
        now: The current time, seconds since the epoch.
        what: What the run does, for the sentences ("ingestion of 3 landing files").
        fix_hint: What a user does once the cause is fixed ("run `agentops run`").
        max_runs: Runs of one state before giving up.
        backoff_seconds: Wait before the first retry; doubles for each later retry.

    Returns:
        A ``Request``, or a sentence saying why nothing is requested.
    """
    if latest is None:
        if cursor == key:
            return f"The run for {what} ({key}) is requested and not started yet."
        return Request(run_key=key, attempt=0)
    runs = f"run {latest.number + 1} of at most {max_runs}"
    if latest.state == "in_progress":
        return f"The run for {what} ({key}, {runs}) is in progress."
    if latest.state == "success":
        return f"The run for {what} ({key}) succeeded."
    if latest.state == "canceled":
        return f"The run for {what} ({key}) was canceled; {fix_hint} to do it."
    if latest.number + 1 >= max_runs:
        return (
            f"Gave up after {latest.number + 1} failed runs of {what} ({key}); "
            f"fix the cause, then {fix_hint}."
        )
    wait = backoff_seconds * 2**latest.number - (now - (latest.ended_at or now))
    attempt = latest.number + 1
    retry_key = f"{key}-retry-{attempt}"
    if wait > 0:
        return f"The run for {what} failed ({runs}); retrying in {wait:.0f} s as {retry_key}."
    return Request(run_key=retry_key, attempt=attempt)
