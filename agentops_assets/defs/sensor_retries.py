"""Sensors' run requests with bounded retries of failed runs (see ``retry_policy``)."""

import dagster as dg
from dagster._time import get_current_timestamp

from agentops_assets.defs.retry_policy import Attempt, Request, next_request

STATE_TAG = "agentops/sensor_state"
ATTEMPT_TAG = "agentops/attempt"

_STATES = {
    dg.DagsterRunStatus.SUCCESS: "success",
    dg.DagsterRunStatus.FAILURE: "failure",
    dg.DagsterRunStatus.CANCELED: "canceled",
}


def request_or_retry(
    context: dg.SensorEvaluationContext,
    *,
    key: str,
    what: str,
    fix_hint: str,
    tags: dict[str, str] | None = None,
) -> dg.RunRequest | dg.SkipReason:
    """A run request for the state ``key``, a retry of its failed run, or why neither.

    The cursor is the last key requested; each run carries the key and its attempt number in
    tags, which is how the next tick finds the latest run of the state.
    """
    decision = next_request(
        key=key,
        cursor=context.cursor,
        latest=_latest_attempt(context.instance, key),
        now=get_current_timestamp(),  # Dagster's clock, which tests can freeze
        what=what,
        fix_hint=fix_hint,
    )
    if not isinstance(decision, Request):
        return dg.SkipReason(decision)
    context.update_cursor(key)
    return dg.RunRequest(
        run_key=decision.run_key,
        tags={**(tags or {}), STATE_TAG: key, ATTEMPT_TAG: str(decision.attempt)},
    )


def _latest_attempt(instance: dg.DagsterInstance, key: str) -> Attempt | None:
    records = instance.get_run_records(filters=dg.RunsFilter(tags={STATE_TAG: key}), limit=1)
    if not records:
        return None
    record = records[0]
    return Attempt(
        number=int(record.dagster_run.tags.get(ATTEMPT_TAG, "0")),
        state=_STATES.get(record.dagster_run.status, "in_progress"),
        ended_at=record.end_time,
    )
