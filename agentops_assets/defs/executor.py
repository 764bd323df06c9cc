"""Which executor runs the code location's steps: Dagster's default, or Celery workers.

``AGENTOPS_EXECUTOR`` picks it when the definitions load (in the code server, the run worker
and every Celery worker alike):

- unset, ``default`` or ``multiprocess``: Dagster's default executor, exactly as a single
  machine has always run (steps in subprocesses; ``execute_in_process`` stays in-process).
- ``celery``: dagster-celery's executor. Each step of a run becomes a Celery task on the
  ``dagster`` queue of the broker ``AGENTOPS_CELERY_BROKER`` (default
  ``amqp://guest:guest@127.0.0.1:5672//``, RabbitMQ's local guest account; a Redis URL such as
  ``redis://127.0.0.1:6379/0`` works too), its result reported through
  ``AGENTOPS_CELERY_BACKEND`` (default ``rpc://``, answers over the broker; ``redis://...``
  keeps them in Redis). Workers started with ``dagster-celery worker start -A
  dagster_celery.app -y deploy/celery.yaml`` take the tasks, on any machine that reaches the
  broker, the run storage (``DAGSTER_PG_URL``) and the lake.

No URL is written into a file by this module: when a variable is set the executor's config is
an ``{"env": NAME}`` source, resolved in each process from its own environment, so a password
in the broker URL never reaches the run storage or the code.

How partitioned work spreads over the workers, and why the daily assets keep the single-run
backfill policy (``BackfillPolicy.single_run``, set for FinOps, drift and governance in
``defs/partitioned.py``, for alerts in ``defs/alerts/assets.py``):

- A day's tables read the days before it, and Dagster is not told so (the assets' deps name
  no partition mapping): ``reasoning_cycles`` of a day reads ``event_costs`` of the day before
  and after, ``agent_type_roi`` the daily metrics of the previous month to date,
  ``budget_compliance`` the month's spend to date, ``behavior_baselines``/``drift_findings`` and
  ``behavior_anomalies`` the trailing window's cycles (14 days by default), the governance
  assets the 30 days' statistics and the days' drift findings, and the audit ledger appends in
  day order. A per-partition backfill (``BackfillPolicy.multi_run(1)``) starts every day at
  once, so a day could read days not written yet: its result would depend on timing. A
  single-run backfill computes each asset for the whole range in one pass, in dependency
  order, and gives the same tables as the days one after the other.
- Within a run every step is a Celery task: independent steps (``coordination_findings``
  beside the FinOps chain, ``behavior_anomalies`` beside drift, the asset checks) run on
  different workers at once.
- Across days, work fans out as per-day runs launched in day order (``agentops demo
  --distributed`` does this: the day after starts when the day before has succeeded); each
  day's steps spread over the workers.
- Per-partition backfills become the better choice once the cross-day reads are declared
  (``AssetDep(..., partition_mapping=TimeWindowPartitionMapping(start_offset=-N))``): the
  asset backfill daemon then starts a day only when the days it reads are done. The assets
  whose day reads only the same day (``event_costs``, ``agent_daily_metrics``,
  ``coordination_findings``) could take ``multi_run(1)`` first.
- deploy/dagster.yaml limits the lake writers' pool to one step at a time (``default_limit:
  1``): until that limit is raised, lake-writing steps run one after another whichever worker
  takes them; the workers add machines for the rest and take over when one dies.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "AGENTOPS_EXECUTOR"
BROKER_ENV = "AGENTOPS_CELERY_BROKER"
BACKEND_ENV = "AGENTOPS_CELERY_BACKEND"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "rpc://"
_DEFAULT_NAMES = {"", "default", "multiprocess"}


class ExecutorSettingError(ValueError):
    """``AGENTOPS_EXECUTOR`` names no executor this code location knows."""


def executor_name() -> str:
    """``celery`` or ``default``, from ``AGENTOPS_EXECUTOR``."""
    value = os.environ.get(EXECUTOR_ENV, "").strip().lower()
    if value in _DEFAULT_NAMES:
        return "default"
    if value == "celery":
        return "celery"
    raise ExecutorSettingError(
        f"{EXECUTOR_ENV}={value!r} is not an executor this code location knows; expected "
        "'celery', or 'default' (or unset) for Dagster's own executor."
    )


def celery_config() -> dict:
    """The celery executor's config: each URL an env source when its variable is set, else the
    local default (no secret in it)."""
    return {
        "broker": _from_env(BROKER_ENV, DEFAULT_BROKER),
        "backend": _from_env(BACKEND_ENV, DEFAULT_BACKEND),
    }


def _from_env(name: str, default: str) -> str | dict:
    return {"env": name} if os.environ.get(name, "").strip() else default


def selected_executor() -> dg.ExecutorDefinition | None:
    """The executor for the merged Definitions; None keeps Dagster's default."""
    if executor_name() == "default":
        return None
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(), name="celery")
